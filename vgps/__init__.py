"""vgps — Value-Guided Policy Steering (Nakamoto, Mees, Kumar, Levine; CoRL 2024) in JAX.

Label demos with sparse success rewards (:mod:`vgps.data`), fit a language-conditioned
Q(s, a, l) offline (:mod:`vgps.agents`), and re-rank K actions sampled from any black-box
generalist policy at test time (:mod:`vgps.steer`).

Importing vgps pins the instruction set (:mod:`vgps.isa`) before numpy is loaded, so results are
byte-identical on AVX2 and AVX-512 machines; it warns when numpy was imported first.
"""
from vgps import isa as _isa

_isa.apply()

__version__ = "0.1.0"
