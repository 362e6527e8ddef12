import json
from pathlib import Path

import pytest

from tinyagent_ft.synth.generate import SynthConfig, synthesize


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset shared by the tests."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, SynthConfig(n=2000, seed=1))
    return out


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path
