"""``python -m vgps_server octo --checkpoint DIR --port 8000``: serve a real policy from its own
environment (docs/serving.md). ``octo-tiny`` serves a randomly initialised Octo (tests, no download).
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vgps_server")
    p.add_argument("policy", choices=["octo", "octo-tiny"])
    p.add_argument("--checkpoint", help="octo: a local checkpoint directory (OctoModel.load_pretrained)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = any free port (printed)")
    p.add_argument("--no-ensemble", action="store_true", help="no temporal ensembling")
    p.add_argument("--seed", type=int, default=0, help="octo-tiny: initialisation seed")
    p.add_argument("--image-size", type=int, default=64, help="octo-tiny: image size")
    a = p.parse_args(argv)
    from vgps_server.server import PolicyServer
    from vgps_server import octo
    import types
    sys.modules.setdefault("dlimp", types.ModuleType("dlimp"))       # octo.model imports dlimp (git-only) for DLataset alone
    sys.modules["dlimp"].DLataset = getattr(sys.modules["dlimp"], "DLataset", object)
    if a.policy == "octo":
        if not a.checkpoint:
            p.error("octo needs --checkpoint DIR (a local copy of e.g. rail-berkeley/octo-small-1.5)")
        from octo.model.octo_model import OctoModel
        model = OctoModel.load_pretrained(a.checkpoint)
        backend = octo.OctoBackend(model, name="octo", ensemble=not a.no_ensemble)
    else:
        model = octo.tiny_octo(seed=a.seed, image_size=a.image_size)
        backend = octo.OctoBackend(model, name="octo-tiny", ensemble=not a.no_ensemble,
                                   embed=octo.hash_embedding)
    srv = PolicyServer(backend, host=a.host, port=a.port)
    print(f"serving policy {backend.name!r} at {srv.url}  (Ctrl-C stops)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
