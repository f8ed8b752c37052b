"""Golden files for data/image_decode.hpp and data/preprocess.hpp: images of odd sizes in
every mode the decoder takes (RGB and gray JPEG; RGB, gray, palette, RGBA and 1-bit PNG),
written by PIL into preprocess_images/, and what PIL and torchvision 0.14 make of them:

  decoded.<image>.<1|3>        PIL's pixels after convert("L") / convert("RGB"), [H, W, C]
  eval.<image>.<S>.<f>.<1|3>   timm/DeiT evaluation transform on float tensors:
                               resize(floor(S / 0.875), f, antialias=True), center_crop(S),
                               normalize (ImageNet mean/std for RGB, 0.5/0.5 for gray)
  pil.<image>.<S>.<f>.<1|3>    the same transform on PIL images, as timm runs it (PIL's resize:
                               8-bit fixed point, rounding and clipping after each pass)
  crop.<image>.<f>             resized_crop(top, left, h, w -> 24x24, antialias=True) of the
                               RGB tensor in [0, 1], box in crop_box.<image> (I64 [4])
  crop_pil.<image>.<f>         the same crop and resize of the PIL image, to_tensor

and in preprocess_bad/ a CMYK JPEG and a 16-bit PNG, which the decoder refuses.
"""
import pathlib

import torch
from PIL import Image
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

import st

MEAN3, STD3 = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
MODES = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}


def smooth_image(h, w, channels, seed):
    """Gradients plus noise: structure a resize visibly changes, values over the full range."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(h, 1, 1)
    x = torch.linspace(0, 1, w).view(1, w, 1)
    phase = torch.rand(1, 1, channels, generator=g) * 6.28
    base = 0.5 + 0.35 * torch.sin(7 * x + 5 * y * y + phase)
    noise = torch.rand(h, w, channels, generator=g) * 0.3 - 0.15
    return ((base + noise).clamp(0, 1) * 255).round().to(torch.uint8)


def make_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    rgb = smooth_image(37, 53, 3, 1).numpy()
    Image.fromarray(rgb, "RGB").save(folder / "rgb_odd.jpg", quality=90)
    images["rgb_odd"] = "rgb_odd.jpg"
    gray = smooth_image(64, 31, 1, 2)[:, :, 0].numpy()
    Image.fromarray(gray, "L").save(folder / "gray_tall.jpg", quality=85)
    images["gray_tall"] = "gray_tall.jpg"
    big = smooth_image(301, 257, 3, 3).numpy()
    Image.fromarray(big, "RGB").save(folder / "rgb_big.png")
    images["rgb_big"] = "rgb_big.png"
    g2 = smooth_image(41, 29, 1, 4)[:, :, 0].numpy()
    Image.fromarray(g2, "L").save(folder / "gray_odd.png")
    images["gray_odd"] = "gray_odd.png"
    pal = Image.fromarray(smooth_image(45, 60, 3, 5).numpy(), "RGB").quantize(colors=37)
    pal.save(folder / "palette.png")
    images["palette"] = "palette.png"
    rgba = smooth_image(33, 47, 4, 6).numpy()
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    images["rgba"] = "rgba.png"
    bits = (smooth_image(30, 35, 1, 7)[:, :, 0] > 127).numpy()
    Image.fromarray(bits).convert("1").save(folder / "one_bit.png")
    images["one_bit"] = "one_bit.png"
    # Files the decoder must refuse with a clear error (tests/data/test_preprocess.cpp).
    bad = folder.parent / "preprocess_bad"
    bad.mkdir(parents=True, exist_ok=True)
    Image.fromarray(smooth_image(20, 20, 3, 8).numpy(), "RGB").convert("CMYK").save(bad / "cmyk.jpg")
    Image.fromarray((smooth_image(20, 20, 1, 9)[:, :, 0].to(torch.int32) * 257).numpy(), "I").convert(
        "I;16").save(bad / "sixteen_bit.png")
    return images


def to_float(img):
    return TF.pil_to_tensor(img).to(torch.float32) / 255.0


def eval_tensor(img, size, mode, channels):
    t = to_float(img)
    t = TF.resize(t, [int(size / 0.875)], interpolation=MODES[mode], antialias=True)
    t = TF.center_crop(t, [size])
    mean, std = (MEAN3, STD3) if channels == 3 else ([0.5], [0.5])
    return TF.normalize(t, mean, std)


def eval_pil(img, size, mode, channels):
    img = TF.resize(img, [int(size / 0.875)], interpolation=MODES[mode])
    img = TF.center_crop(img, [size])
    mean, std = (MEAN3, STD3) if channels == 3 else ([0.5], [0.5])
    return TF.normalize(to_float(img), mean, std)


def generate(out_dir):
    out_dir = pathlib.Path(out_dir)
    folder = out_dir / "preprocess_images"
    images = make_images(folder)
    t = {}
    for name, file in images.items():
        src = Image.open(folder / file)
        for channels, mode in ((1, "L"), (3, "RGB")):
            img = src.convert(mode)
            px = torch.from_numpy(__import__("numpy").array(img)).reshape(img.height, img.width, channels)
            t[f"decoded.{name}.{channels}"] = px.to(torch.float32)
            for size in (24, 48):
                for f in MODES:
                    t[f"eval.{name}.{size}.{f}.{channels}"] = eval_tensor(img, size, f, channels)
                    t[f"pil.{name}.{size}.{f}.{channels}"] = eval_pil(img, size, f, channels)
        rgb = src.convert("RGB")
        h, w = rgb.height, rgb.width
        box = [h // 5, w // 7, max(1, (3 * h) // 5), max(1, (2 * w) // 3)]
        t[f"crop_box.{name}"] = torch.tensor(box, dtype=torch.int64)
        for f in MODES:
            t[f"crop.{name}.{f}"] = TF.resized_crop(to_float(rgb), box[0], box[1], box[2], box[3], [24, 24],
                                                    interpolation=MODES[f], antialias=True)
            t[f"crop_pil.{name}.{f}"] = to_float(TF.resized_crop(rgb, box[0], box[1], box[2], box[3], [24, 24],
                                                                 interpolation=MODES[f]))
    st.save(out_dir / "preprocess.safetensors", t, {"images": ",".join(f"{k}={v}" for k, v in images.items())})
