"""Networks: encoders (MLP, small conv, ResNet-18/34 + FiLM), Q/V heads, tanh-Gaussian policy."""
from vgps.nets.critic import MLP, CriticNet, QHead, ValueNet
from vgps.nets.encoders import (ConvEncoder, FiLM, MLPEncoder, ResNetEncoder, image_to_float,
                                make_encoder)
from vgps.nets.policy import TanhGaussianPolicy, log_prob, mode, sample_and_log_prob

__all__ = ["MLP", "CriticNet", "QHead", "ValueNet", "ConvEncoder", "FiLM", "MLPEncoder",
           "ResNetEncoder", "image_to_float", "make_encoder", "TanhGaussianPolicy", "log_prob",
           "mode", "sample_and_log_prob"]
