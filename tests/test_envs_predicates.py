"""Success predicates, judged from positions alone."""
import numpy as np

from vgps.envs import tasks as T
from vgps.envs.catalogue import OBJECTS


def _rest(name, xy, table=0.0, below=None):
    """Resting origin of ``name`` at ``xy`` (on the table or on ``below``'s top)."""
    base = table if below is None else table + OBJECTS[below].top
    return np.array([*xy, base + OBJECTS[name].rest_z])


def test_on_top_plate_towel_block():
    for src, tgt in [("carrot", "plate"), ("spoon", "towel"), ("green_block", "yellow_block")]:
        tgt_pos = _rest(tgt, (0.3, 0.0))
        on = _rest(src, (0.3 + OBJECTS[tgt].inner * 0.5, 0.0), below=tgt)
        assert T.on_top(on, tgt_pos, src, tgt, 0.0, grasped=False)
        assert not T.on_top(on, tgt_pos, src, tgt, 0.0, grasped=True)          # still held
        off = _rest(src, (0.3 + OBJECTS[tgt].inner + 0.03, 0.0))
        assert not T.on_top(off, tgt_pos, src, tgt, 0.0, grasped=False)         # beside it
        hover = on + [0, 0, 0.05]
        assert not T.on_top(hover, tgt_pos, src, tgt, 0.0, grasped=False)       # in the air


def test_on_top_respects_table_height():
    z = -0.0254
    tgt = _rest("plate", (0.3, 0.1), table=z)
    src = np.array([0.3, 0.1, z + OBJECTS["plate"].top + OBJECTS["carrot"].rest_z])
    assert T.on_top(src, tgt, "carrot", "plate", z, grasped=False)


def test_inside_basket():
    b = _rest("yellow_basket", (0.3, 0.0))
    inside = np.array([0.32, 0.01, 0.008 + OBJECTS["eggplant"].rest_z])
    assert T.inside(inside, b, "eggplant", "yellow_basket", 0.0, grasped=False)
    assert not T.inside(inside, b, "eggplant", "yellow_basket", 0.0, grasped=True)
    assert not T.inside(inside + [0.12, 0, 0], b, "eggplant", "yellow_basket", 0.0, grasped=False)
    assert not T.inside(inside + [0, 0, 0.1], b, "eggplant", "yellow_basket", 0.0, grasped=False)


def test_lifted():
    p0 = np.array([0.4, 0.0, 0.06])
    assert T.lifted(p0 + [0, 0, T.LIFT_HEIGHT + 0.001], p0, grasped=True)
    assert not T.lifted(p0 + [0, 0, T.LIFT_HEIGHT + 0.001], p0, grasped=False)   # tossed, not held
    assert not T.lifted(p0 + [0, 0, 0.01], p0, grasped=True)


def test_near():
    src = _rest("coke_can", (0.40, 0.0))
    assert T.near(src, _rest("apple", (0.40, 0.10)), "coke_can", 0.0, False, others_moved=0.0)
    assert not T.near(src, _rest("apple", (0.40, 0.20)), "coke_can", 0.0, False, 0.0)   # too far
    assert not T.near(src, _rest("apple", (0.40, 0.10)), "coke_can", 0.0, True, 0.0)    # held
    assert not T.near(src, _rest("apple", (0.40, 0.10)), "coke_can", 0.0, False, 0.08)  # pushed
    assert not T.near(src + [0, 0, 0.05], _rest("apple", (0.4, 0.1)), "coke_can", 0.0, False, 0.0)
