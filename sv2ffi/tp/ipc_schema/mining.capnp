# Bitcoin Core's Mining interface, the subset a template provider uses.
# Facts from bitcoin/bitcoin src/ipc/capnp/mining.capnp and src/interfaces/mining.h
# (v31 and master 31.99).  Struct field defaults are part of the wire format (Cap'n Proto
# stores a field XOR its default), so they are Core's exactly.  Timeouts are milliseconds.

@0xc77d03df6a41b505;

using Proxy = import "proxy.capnp";
using Common = import "common.capnp";

const maxMoney :Int64 = 2100000000000000;
const maxDouble :Float64 = 1.7976931348623157e308;
const defaultBlockReservedWeight :UInt32 = 8000;
const defaultCoinbaseOutputMaxAdditionalSigops :UInt32 = 400;

interface Mining {
    isTestChain @0 (context :Proxy.Context) -> (result :Bool);
    isInitialBlockDownload @1 (context :Proxy.Context) -> (result :Bool);
    getTip @2 (context :Proxy.Context) -> (result :Common.BlockRef, hasResult :Bool);
    # returns the tip once it differs from currentTip, or the unchanged tip at the timeout;
    # an empty hash after interrupt() or while the node shuts down
    waitTipChanged @3 (context :Proxy.Context, currentTip :Data,
                       timeout :Float64 = .maxDouble) -> (result :Common.BlockRef);
    # cooldown: wait out initial block download and headers ahead of the tip first
    createNewBlock @4 (context :Proxy.Context, options :BlockCreateOptions,
                       cooldown :Bool = true) -> (result :BlockTemplate);
    checkBlock @5 (context :Proxy.Context, block :Data, options :BlockCheckOptions)
        -> (reason :Text, debug :Text, result :Bool);
    interrupt @6 () -> ();
    # Not in v31 nor master 31.99 (those answer "unimplemented"): added by later Core
    # development; used only where the node has it.
    submitBlock @7 (context :Proxy.Context, block :Data)
        -> (reason :Text, debug :Text, result :Bool);
}

interface BlockTemplate {
    destroy @0 (context :Proxy.Context) -> ();
    getBlockHeader @1 (context :Proxy.Context) -> (result :Data);
    # the block with a placeholder coinbase; transactions in their witness serialization
    getBlock @2 (context :Proxy.Context) -> (result :Data);
    getTxFees @3 (context :Proxy.Context) -> (result :List(Int64));
    getTxSigops @4 (context :Proxy.Context) -> (result :List(Int64));
    getCoinbaseTx @5 (context :Proxy.Context) -> (result :CoinbaseTx);
    getCoinbaseMerklePath @6 (context :Proxy.Context) -> (result :List(Data));
    # coinbase: the complete transaction including its witness (not added by the node)
    submitSolution @7 (context :Proxy.Context, version :UInt32, timestamp :UInt32,
                       nonce :UInt32, coinbase :Data) -> (result :Bool);
    # a new template once fees rose by feeThreshold or the tip changed; none at the timeout
    waitNext @8 (context :Proxy.Context, options :BlockWaitOptions) -> (result :BlockTemplate);
    interruptWait @9 () -> ();
}

struct BlockCreateOptions {
    useMempool @0 :Bool = true;
    blockReservedWeight @1 :UInt64 = .defaultBlockReservedWeight;
    coinbaseOutputMaxAdditionalSigops @2 :UInt64 = .defaultCoinbaseOutputMaxAdditionalSigops;
}

struct BlockWaitOptions {
    timeout @0 :Float64 = .maxDouble;
    feeThreshold @1 :Int64 = .maxMoney;
}

struct BlockCheckOptions {
    checkMerkleRoot @0 :Bool = true;
    checkPow @1 :Bool = true;
}

struct CoinbaseTx {
    version @0 :UInt32;
    sequence @1 :UInt32;
    scriptSigPrefix @2 :Data;
    witness @3 :Data;                   # absent when the coinbase needs no witness
    blockRewardRemaining @4 :Int64;     # subsidy + fees not yet paid to requiredOutputs
    requiredOutputs @5 :List(Data);     # serialized outputs, e.g. the witness commitment
    lockTime @6 :UInt32;
}
