# The bootstrap interface a bitcoin-node serves on its -ipcbind socket.
# Facts from bitcoin/bitcoin src/ipc/capnp/init.capnp (v31 and master 31.99).
#
# Version marker: Core v30 served makeMining at ordinal 2.  v31 moved it to ordinal 3 (the
# Mining interface changed incompatibly) and made ordinal 2 an error stub, so a v30 node
# answers makeMining @3 with "unimplemented".

@0xf2c5cfa319406aa6;

using Proxy = import "proxy.capnp";
using Echo = import "echo.capnp";
using Mining = import "mining.capnp";

interface Init {
    construct @0 (threadMap :Proxy.ThreadMap) -> (threadMap :Proxy.ThreadMap);
    makeEcho @1 (context :Proxy.Context) -> (result :Echo.Echo);
    makeMiningOld2 @2 () -> ();
    makeMining @3 (context :Proxy.Context) -> (result :Mining.Mining);
}
