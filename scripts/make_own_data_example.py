#!/usr/bin/python3
"""Makes "your own data" for the guide docs/own-data.md and the test cli.own_data: a small image
folder in ImageNet's layout and a DeiT-Tiny-shaped ViT with timm's names, plus what PyTorch
computes on it with timm's evaluation transform.

  OUT/images/train/<class>/*.jpg|png   generated images of random odd sizes (RGB and gray)
  OUT/images/val/<class>/*.jpg|png
  OUT/deit_tiny.safetensors            timm VisionTransformer, embed 192, depth 12, 3 heads,
                                       patch 16, 224x224 RGB (random weights: no pretrained
                                       weights can be downloaded here)
  OUT/pytorch_val.safetensors          'logits' [N, classes] and 'images' [N, 3, 224, 224] of val/
                                       in ImageFolder's order after timm's DeiT transform:
                                       Resize(256, bicubic) on PIL, CenterCrop(224), ToTensor,
                                       Normalize(ImageNet mean, std); metadata 'files',
                                       'accuracy', 'loss' (mean cross-entropy)

Run with Debian's PyTorch: /usr/bin/python3 scripts/make_own_data_example.py --out DIR
"""
import argparse
import math
import os
import pathlib
import sys

import torch
from PIL import Image
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
from train_timm_vit import VisionTransformer  # noqa: E402  timm's module names
import st  # noqa: E402  the safetensors writer of the golden tests

CLASSES = ["circles", "diagonal", "horizontal", "vertical"]


def make_image(cls, rng, size):
    """A class-specific pattern (stripes of one orientation, or rings) in a random colour."""
    h, w = size
    y = torch.arange(h, dtype=torch.float32).view(h, 1)
    x = torch.arange(w, dtype=torch.float32).view(1, w)
    period = 8 + 16 * float(torch.rand(1, generator=rng))
    if cls == "horizontal":
        u = y
    elif cls == "vertical":
        u = x
    elif cls == "diagonal":
        u = (x + y) / math.sqrt(2)
    else:
        u = torch.sqrt((x - w / 2) ** 2 + (y - h / 2) ** 2)
    wave = 0.5 + 0.5 * torch.sin(2 * math.pi * u / period + 6.28 * float(torch.rand(1, generator=rng)))
    colour = torch.rand(3, generator=rng) * 0.6 + 0.4
    img = wave.unsqueeze(-1) * colour + 0.1 * torch.rand(h, w, 3, generator=rng)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def write_split(root, split, per_class, rng):
    for cls in CLASSES:
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (int(torch.randint(150, 330, (1,), generator=rng)), int(torch.randint(150, 330, (1,), generator=rng)))
            img = Image.fromarray(make_image(cls, rng, size), "RGB")
            if i % 4 == 3:
                img = img.convert("L")  # gray files: ImageFolder's loader makes them RGB again
            if i % 2:
                img.save(folder / f"{cls}_{i:03d}.png")
            else:
                img.save(folder / f"{cls}_{i:03d}.jpg", quality=90)


def deit_eval_transform():
    return T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                      T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--train-per-class", type=int, default=24)
    p.add_argument("--val-per-class", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.train_per_class < 1 or a.val_per_class < 1:
        sys.exit("make_own_data_example: --train-per-class and --val-per-class must be >= 1")
    out = pathlib.Path(a.out)
    rng = torch.Generator().manual_seed(a.seed)
    write_split(out / "images", "train", a.train_per_class, rng)
    write_split(out / "images", "val", a.val_per_class, rng)

    torch.manual_seed(a.seed)
    model = VisionTransformer(img=224, patch=16, chans=3, classes=len(CLASSES), dim=192, depth=12, mlp_ratio=4.0)
    model.eval()
    st.save(out / "deit_tiny.safetensors", {k: v.float() for k, v in model.state_dict().items()})

    # ImageFolder's order and loader: sorted classes, sorted files, PIL convert("RGB").
    tf = deit_eval_transform()
    files, labels, images = [], [], []
    for label, cls in enumerate(sorted(CLASSES)):
        for f in sorted((out / "images" / "val" / cls).iterdir()):
            files.append(str(f))
            labels.append(label)
            with Image.open(f) as im:
                images.append(tf(im.convert("RGB")))
    x = torch.stack(images)
    torch.set_num_threads(1)
    with torch.no_grad():
        logits = model(x)
    acc = (logits.argmax(1) == torch.tensor(labels)).float().mean().item()
    loss = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(labels)).item()
    st.save(out / "pytorch_val.safetensors", {"logits": logits, "images": x},
            {"files": "\n".join(files), "accuracy": repr(acc), "loss": repr(loss)})
    print(f"wrote {out}: {len(files)} val images, {len(CLASSES)} classes, PyTorch val accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
