"""RLDS reading/writing, reward labelling, normalizers, mixing, augmentation, language encoder.

Entry points: :func:`load_training_data` (trainers), :func:`iter_episodes` / :func:`load_episodes`
(readers), :func:`write_rlds` (generators), :func:`label_steps` (labels).
Submodules import TensorFlow lazily; importing :mod:`vgps.data` itself is cheap.
"""
from vgps.data.labels import label_episode, label_steps, reward_values
from vgps.data.normalize import ActionNormalizer, StateNormalizer, load_statistics

__all__ = ["label_episode", "label_steps", "reward_values", "ActionNormalizer", "StateNormalizer",
           "load_statistics", "load_training_data", "iter_episodes", "load_episodes", "write_rlds",
           "LanguageEncoder"]


def __getattr__(name):  # lazy: keep `import vgps.data` free of TensorFlow
    if name == "load_training_data":
        from vgps.data.loader import load_training_data
        return load_training_data
    if name in ("iter_episodes", "load_episodes"):
        from vgps.data import rlds
        return getattr(rlds, name)
    if name == "write_rlds":
        from vgps.data.rlds_writer import write_rlds
        return write_rlds
    if name == "LanguageEncoder":
        from vgps.data.language import LanguageEncoder
        return LanguageEncoder
    raise AttributeError(name)
