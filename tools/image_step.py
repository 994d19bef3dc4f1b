"""How far a method moves the synthetic images in its first K iterations, on real Fashion-MNIST
with the quick config: RMS(images after K − images at the start) / RMS(images at the start).

Used to put the latent methods' learning rates on the scale of their pixel counterparts
(docs/methods/glad.md, "Calibrating the quick learning rates"): the published GLaD lrs were tuned for StyleGAN-XL's
feature maps, whose scale the suite's small prior does not share, so lr_f and lr_w are scaled
together (keeping their published ratio) until the image moves about as far as the pixel
method's does in the same number of iterations.

    python tools/image_step.py METHOD IPC K '{"key": value}'
"""
import json
import sys

from benchsuite.probe import probe

method, ipc, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
overrides = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
start = probe(method, "fashionmnist", ipc, overrides=overrides | {"iterations": 0}, evaluate=False)
end = probe(method, "fashionmnist", ipc, overrides=overrides | {"iterations": k}, evaluate=False)
a, b = start.synthetic.images, end.synthetic.images
rel = float((b - a).square().mean().sqrt() / a.square().mean().sqrt())
print(json.dumps({"method": method, "ipc": ipc, "iterations": k, "overrides": overrides,
                  "relative_image_change": round(rel, 4), "seconds": round(end.distill_seconds, 1)}), flush=True)
