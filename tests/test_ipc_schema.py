"""sv2ffi's Cap'n Proto schema subset against Bitcoin Core's (the wire contract).

A call names an interface id (derived from the file id and the interface's name) and a
method ordinal; a struct is a data section and pointers at offsets the compiler derives
from ordinals and types, each field stored XOR its default.  ``wire_facts`` reduces a
schema to exactly those facts.  ``vectors/core_ipc_wire.json`` holds them for Core's own
files (bitcoin/bitcoin master 31.99: src/ipc/capnp/{init,mining,common,echo}.capnp,
src/ipc/libmultiprocess/include/mp/proxy.capnp; v31.0's release notes list no later
change), so this runs everywhere; with ``SV2FFI_BITCOIN_SRC`` pointing at a Core source
tree the facts are also taken from Core's files directly.

Regenerate the vector: ``python tests/test_ipc_schema.py /path/to/bitcoin > tests/vectors/core_ipc_wire.json``
"""

import json
import os
import sys
from pathlib import Path

import pytest

from sv2ffi.tp.ipc_schema import load

VECTOR = Path(__file__).parent / "vectors" / "core_ipc_wire.json"
INTERFACES = {"init": ["Init"], "mining": ["Mining", "BlockTemplate"], "echo": ["Echo"],
              "proxy": ["ThreadMap", "Thread"]}
STRUCTS = {"mining": ["BlockCreateOptions", "BlockWaitOptions", "BlockCheckOptions", "CoinbaseTx"],
           "common": ["BlockRef"], "proxy": ["Context"]}
#: declared by sv2ffi, not in Core v31 / master 31.99 (used only where a node has it)
LATER_CORE = {("Mining", "submitBlock")}


def _type(t) -> str:
    which = t.which()
    if which == "struct":
        return f"struct:{t.struct.typeId:#x}"
    if which == "interface":
        return f"interface:{t.interface.typeId:#x}"
    if which == "list":
        return f"list({_type(t.list.elementType)})"
    return which


def _default(slot) -> str:
    v = slot.defaultValue
    which = v.which()
    if which in ("struct", "list", "anyPointer", "interface", "data", "text"):
        return which  # pointer defaults: none of ours has a non-null one
    return f"{which}={getattr(v, which)!r}"


def _struct_facts(node) -> dict:
    s = node.struct
    return {"data_words": s.dataWordCount, "pointers": s.pointerCount,
            "fields": {f.name: [f.slot.offset, _type(f.slot.type), _default(f.slot)]
                       for f in s.fields}}


def wire_facts(modules: dict) -> dict:
    """{name: facts} for the interfaces and structs sv2ffi uses, from loaded modules."""
    out = {}
    for mod, names in INTERFACES.items():
        for name in names:
            schema = getattr(modules[mod], name).schema
            methods = {}
            for ordinal, m in enumerate(schema.node.interface.methods):
                meth = schema.methods[m.name]
                methods[m.name] = {"ordinal": ordinal,
                                   "params": _struct_facts(meth.param_type.node),
                                   "results": _struct_facts(meth.result_type.node)}
            out[name] = {"id": f"{schema.node.id:#x}", "methods": methods}
    for mod, names in STRUCTS.items():
        for name in names:
            node = getattr(modules[mod], name).schema.node
            out[name] = {"id": f"{node.id:#x}", **_struct_facts(node)}
    return out


def core_facts(src: Path) -> dict:
    import capnp
    src = Path(src) / "src"
    mp = src / "ipc" / "libmultiprocess" / "include"
    imports = [str(mp), str(Path(capnp.__file__).parent.parent), str(src)]
    parser = capnp.SchemaParser()
    mods = {name: parser.load(str(src / "ipc" / "capnp" / f"{name}.capnp"), imports=imports)
            for name in ("init", "mining", "common", "echo")}
    mods["proxy"] = parser.load(str(mp / "mp" / "proxy.capnp"), imports=imports)
    return wire_facts(mods)


def ours() -> dict:
    s = load()
    return wire_facts({name: getattr(s, name) for name in ("init", "mining", "common", "echo",
                                                           "proxy")})


def assert_subset_of(mine: dict, core: dict) -> None:
    for name, facts in mine.items():
        theirs = core[name]
        assert facts["id"] == theirs["id"], name
        if "methods" not in facts:
            assert facts == theirs, name
            continue
        for meth, mf in facts["methods"].items():
            if (name, meth) in LATER_CORE:
                assert meth not in theirs["methods"] or \
                    theirs["methods"][meth]["ordinal"] == mf["ordinal"]
                continue
            assert mf == theirs["methods"].get(meth), f"{name}.{meth}"


def test_schema_matches_core_wire_facts():
    assert_subset_of(ours(), json.loads(VECTOR.read_text()))


def test_interface_ids_are_cores():
    # facts: ids as Core's compiler derives them (file id + name), e.g. Mining 0xf9c68436df3af39e
    s = load()
    assert s.init.Init.schema.node.id == 0x8838C700BA5CBA65
    assert s.mining.Mining.schema.node.id == 0xF9C68436DF3AF39E
    assert s.mining.BlockTemplate.schema.node.id == 0xF9671AD841B2F622
    assert s.proxy.ThreadMap.schema.node.id == 0xEE5E37179AD9DC9D
    ordinals = {m.name: i for i, m in enumerate(s.init.Init.schema.node.interface.methods)}
    assert ordinals["makeMining"] == 3 and ordinals["makeMiningOld2"] == 2  # v31's, not v30's @2


def test_the_double_refuses_nothing_the_client_sends():
    """The test double's v31 variant is sv2ffi's schema minus submitBlock."""
    from core_ipc_double import _schema
    mining = _schema("v31")["mining"].Mining.schema
    assert "submitBlock" not in mining.method_names
    assert mining.node.id == load().mining.Mining.schema.node.id


@pytest.mark.skipif(not os.environ.get("SV2FFI_BITCOIN_SRC"),
                    reason="SV2FFI_BITCOIN_SRC (a Bitcoin Core source tree) not set")
def test_schema_matches_core_source():
    core = core_facts(Path(os.environ["SV2FFI_BITCOIN_SRC"]))
    assert_subset_of(ours(), core)
    assert core == {k: v for k, v in json.loads(VECTOR.read_text()).items()}


if __name__ == "__main__":
    json.dump(core_facts(Path(sys.argv[1])), sys.stdout, indent=1, sort_keys=True)
    print()
