# Facts from bitcoin/bitcoin src/ipc/capnp/common.capnp (file id, names, ordinals, types).

@0xcd2c6232cb484a28;

struct BlockRef {
    hash @0 :Data;      # block hash, internal byte order
    height @1 :Int32;
}
