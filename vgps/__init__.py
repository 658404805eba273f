"""vgps — Value-Guided Policy Steering (Nakamoto, Mees, Kumar, Levine; CoRL 2024) in JAX.

Label demos with sparse success rewards (:mod:`vgps.data`), fit a language-conditioned
Q(s, a, l) offline (:mod:`vgps.agents`), and re-rank K actions sampled from any black-box
generalist policy at test time (:mod:`vgps.steer`).
"""
__version__ = "0.1.0"
