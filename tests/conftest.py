import json
import pathlib

import pytest

VECTORS = pathlib.Path(__file__).parent / "vectors"


def load_vectors(name: str):
    return json.loads((VECTORS / name).read_text())


@pytest.fixture(scope="session")
def message_vectors():
    return load_vectors("messages.json")
