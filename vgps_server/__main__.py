"""``python -m vgps_server octo|rt1x|openvla --checkpoint DIR --port 8000``: serve a real policy
from its own environment (docs/serving.md). ``octo-tiny`` serves a randomly initialised Octo,
``openvla-tiny`` a randomly initialised stand-in with OpenVLA's call surface, and ``rt1x`` with
``--hash-embedding`` a test SavedModel without its sentence encoder (tests, no download).
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgps_server")
    p.add_argument("policy", choices=["octo", "octo-tiny", "rt1x", "openvla", "openvla-tiny"])
    p.add_argument("--checkpoint", help="octo: a local checkpoint directory (OctoModel.load_pretrained); "
                                        "rt1x: the SavedModel directory")
    p.add_argument("--use-large", help="rt1x: a local copy of TF-Hub universal-sentence-encoder-large/5")
    p.add_argument("--hash-embedding", action="store_true",
                   help="rt1x: stand-in instruction embeddings (test models only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = any free port (printed)")
    p.add_argument("--no-ensemble", action="store_true", help="no temporal ensembling")
    p.add_argument("--scoring", choices=["ensembled", "raw_first"], default="ensembled",
                   help="octo: candidates are K ensembled chains (default) or, as the released V-GPS "
                        "code, the raw first actions of K chunks with the chosen one ensembled")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="openvla: sampling temperature of generate (do_sample=True)")
    p.add_argument("--greedy", action="store_true",
                   help="openvla: upstream's greedy decoding (do_sample=False): K identical samples")
    p.add_argument("--dtype", default="float32", help="openvla: torch dtype (bfloat16 on a GPU)")
    p.add_argument("--device", default="cpu", help="openvla: torch device, e.g. cuda:0")
    p.add_argument("--seed", type=int, default=0, help="octo-tiny, openvla-tiny: initialisation seed")
    p.add_argument("--image-size", type=int, default=64, help="octo-tiny: image size")
    a = p.parse_args(argv)
    from vgps_server.server import PolicyServer
    if a.policy == "rt1x":
        from vgps_server import rt1x
        from vgps_server.octo import hash_embedding
        if not a.checkpoint or not (a.use_large or a.hash_embedding):
            p.error("rt1x needs --checkpoint DIR and --use-large DIR (or --hash-embedding for tests)")
        if a.hash_embedding:
            embed = hash_embedding
        else:
            import tensorflow as tf
            use = tf.saved_model.load(a.use_large)
            embed = lambda texts: use(texts).numpy()  # noqa: E731
        backend = rt1x.RT1XBackend(rt1x.load_policy(a.checkpoint), embed, name="rt1x")
        return PolicyServer(backend, host=a.host, port=a.port).run(f"policy {backend.name!r}")
    if a.policy in ("openvla", "openvla-tiny"):
        from vgps_server import openvla
        if a.policy == "openvla":
            if not a.checkpoint:
                p.error("openvla needs --checkpoint DIR (a local copy of e.g. openvla/openvla-7b)")
            model, processor = openvla.load(a.checkpoint, dtype=a.dtype, device=a.device)
            backend = openvla.OpenVLABackend(model, processor, temperature=a.temperature,
                                             do_sample=not a.greedy)
        else:
            model, processor = openvla.tiny_openvla(seed=a.seed)
            backend = openvla.OpenVLABackend(model, processor, name="openvla-tiny", image_size=32,
                                             temperature=a.temperature, do_sample=not a.greedy)
        return PolicyServer(backend, host=a.host, port=a.port).run(f"policy {backend.name!r}")
    from vgps_server import octo
    import types
    sys.modules.setdefault("dlimp", types.ModuleType("dlimp"))       # octo.model imports dlimp (git-only) for DLataset alone
    sys.modules["dlimp"].DLataset = getattr(sys.modules["dlimp"], "DLataset", object)
    if a.policy == "octo":
        if not a.checkpoint:
            p.error("octo needs --checkpoint DIR (a local copy of e.g. rail-berkeley/octo-small-1.5)")
        from octo.model.octo_model import OctoModel
        model = OctoModel.load_pretrained(a.checkpoint)
        backend = octo.OctoBackend(model, name="octo", ensemble=not a.no_ensemble, scoring=a.scoring)
    else:
        model = octo.tiny_octo(seed=a.seed, image_size=a.image_size)
        backend = octo.OctoBackend(model, name="octo-tiny", ensemble=not a.no_ensemble,
                                   embed=octo.hash_embedding, scoring=a.scoring)
    return PolicyServer(backend, host=a.host, port=a.port).run(f"policy {backend.name!r}")


if __name__ == "__main__":
    sys.exit(main())
