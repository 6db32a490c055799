# Declared only because Init's ordinals may not have holes (Init.makeEcho @1 returns one).
# Facts from bitcoin/bitcoin src/ipc/capnp/echo.capnp.

@0x888b4f7f51e691f7;

using Proxy = import "proxy.capnp";

interface Echo {
    destroy @0 (context :Proxy.Context) -> ();
    echo @1 (context :Proxy.Context, echo :Text) -> (result :Text);
}
