# Thread handles and the per-call context of libmultiprocess, the IPC layer of Bitcoin
# Core.  Only the facts the wire depends on are kept: the file id (interface ids are derived
# from it and the interface names), the names, the ordinals and the field types.  Core's
# files carry C++ code-generation annotations that mean nothing on the wire; none here.
#
# Facts from bitcoin/bitcoin src/ipc/libmultiprocess/include/mp/proxy.capnp.

@0xcc316e3f71a040fb;

# A client asks the node for named worker threads; every call names the thread it runs on.
# Calls on one thread run one after another, so a blocking wait needs a thread of its own.
interface ThreadMap {
    makeThread @0 (name :Text) -> (result :Thread);
}

interface Thread {
    getName @0 () -> (result :Text);
}

struct Context {
    thread @0 :Thread;
    callbackThread @1 :Thread;
}
