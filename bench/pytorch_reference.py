"""An independent PyTorch implementation of the SatCLIP location encoder and training step, written
from the math in docs/location-encoder.md, used only as a speed comparator for satclip-bench.

Same workloads as `satclip-bench --json`: the released architecture (L^2 -> 512 -> 512 -> 256,
SIREN w0 = 30 then 1), f32 matrix products on f64 spherical-harmonic features, and one training step
at batch 8192 (dropout, symmetric CLIP loss, a 512 -> 256 image head, AdamW).
"""

import argparse
import json
import math
import time

import torch


def spherical_harmonics(lonlat: torch.Tensor, L: int) -> torch.Tensor:
    """Analytic-convention SH (pi on m = 0, no Condon-Shortley phase) by the three-term recurrence."""
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    theta = torch.deg2rad(lat + 90.0)
    phi = torch.deg2rad(lon + 180.0)
    x, s = torch.cos(theta), torch.sin(theta)
    out = torch.empty(lonlat.shape[0], L * L, dtype=lonlat.dtype)
    p_mm = torch.full_like(x, math.sqrt(0.25 / math.pi))
    for m in range(L):
        if m > 0:
            p_mm = p_mm * math.sqrt((2 * m + 1) / (2 * m)) * s
        if m == 0:
            cos_f, sin_f = math.pi, None
        else:
            cos_f, sin_f = math.sqrt(2) * torch.cos(m * phi), math.sqrt(2) * torch.sin(m * phi)
        p_prev, p = torch.zeros_like(x), p_mm
        for l in range(m, L):
            if l > m:
                a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
                b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
                p_prev, p = p, a * (x * p - b * p_prev)
            centre = l * l + l
            out[:, centre + m] = cos_f * p
            if m > 0:
                out[:, centre - m] = sin_f * p
    return out


class Siren(torch.nn.Module):
    def __init__(self, din: int, hidden: int = 512, dout: int = 256):
        super().__init__()
        self.l0 = torch.nn.Linear(din, hidden)
        self.l1 = torch.nn.Linear(hidden, hidden)
        self.last = torch.nn.Linear(hidden, dout)
        with torch.no_grad():
            bound0 = 1.0 / din
            self.l0.weight.uniform_(-bound0, bound0)
            self.l0.bias.uniform_(-bound0, bound0)
            bound = math.sqrt(6.0 / hidden)
            for layer in (self.l1, self.last):
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)

    def forward(self, f):
        drop = lambda z: torch.nn.functional.dropout(z, 0.5, self.training)
        h = torch.sin(30.0 * drop(self.l0(f)))
        h = torch.sin(drop(self.l1(h)))
        return self.last(h)


def embed_points_per_s(L: int, batch: int) -> float:
    torch.manual_seed(L)
    model = Siren(L * L).eval()
    lonlat = torch.stack([torch.rand(batch, dtype=torch.float64) * 360 - 180,
                          torch.rad2deg(torch.asin(torch.rand(batch, dtype=torch.float64) * 2 - 1))], 1)
    reps = max(1, min(2000, 200_000 // batch))

    def run():
        with torch.no_grad():
            out = []
            for chunk in lonlat.split(65_536):
                out.append(model(spherical_harmonics(chunk, L).float()))
            return out

    run()
    start = time.perf_counter()
    for _ in range(reps):
        run()
    return batch / ((time.perf_counter() - start) / reps)


def train_step_seconds(L: int, n: int = 8192, reps: int = 4) -> float:
    torch.manual_seed(100 + L)
    lonlat = torch.stack([torch.rand(n, dtype=torch.float64) * 360 - 180,
                          torch.rad2deg(torch.asin(torch.rand(n, dtype=torch.float64) * 2 - 1))], 1)
    features = spherical_harmonics(lonlat, L).float()
    images = torch.rand(n, 512)
    siren = Siren(L * L).train()
    head = torch.nn.Linear(512, 256)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = list(siren.parameters()) + list(head.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2] + [logit_scale]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": 0.01}], lr=1e-4)
    labels = torch.arange(n)
    times = []
    for rep in range(reps + 1):
        start = time.perf_counter()
        img = torch.nn.functional.normalize(head(images), dim=1)
        loc = torch.nn.functional.normalize(siren(features), dim=1)
        logits = logit_scale.exp() * img @ loc.t()
        loss = (torch.nn.functional.cross_entropy(logits, labels)
                + torch.nn.functional.cross_entropy(logits.t(), labels)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rep > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


class GeoClipLocationEncoder(torch.nn.Module):
    """GeoCLIP's location encoder (Vivanco Cepeda et al. 2023) as described in its paper and
    docs/evaluation.md: Equal Earth projection, random Fourier features at sigma 1, 16, 256, one
    ReLU MLP (512 -> 1024 x 3 -> 512) per scale, outputs summed; random weights, f32."""

    def __init__(self):
        super().__init__()
        self.fourier = [torch.randn(256, 2) * sigma for sigma in (1.0, 16.0, 256.0)]
        self.branches = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
                                torch.nn.Linear(1024, 512))
            for _ in range(3))

    @staticmethod
    def equal_earth(lonlat):
        a1, a2, a3, a4 = 1.340264, -0.081106, 0.000893, 0.003796
        lon, lat = torch.deg2rad(lonlat[:, 0]), torch.deg2rad(lonlat[:, 1])
        theta = torch.asin(math.sqrt(3) / 2 * torch.sin(lat))
        x = 2 * math.sqrt(3) * lon * torch.cos(theta) / (
            3 * (9 * a4 * theta**8 + 7 * a3 * theta**6 + 3 * a2 * theta**2 + a1))
        y = a4 * theta**9 + a3 * theta**7 + a2 * theta**3 + a1 * theta
        return torch.stack([x, y], 1) * 66.50336 / 180

    def forward(self, lonlat):
        v = 2 * math.pi * self.equal_earth(lonlat)
        out = 0
        for b, mlp in zip(self.fourier, self.branches):
            phases = v @ b.t()
            out = out + mlp(torch.cat([torch.cos(phases), torch.sin(phases)], 1))
        return out


def geoclip_points_per_s(batch: int) -> float:
    torch.manual_seed(7)
    model = GeoClipLocationEncoder().eval()
    lonlat = torch.stack([torch.rand(batch) * 360 - 180, torch.rad2deg(torch.asin(torch.rand(batch) * 2 - 1))], 1)
    reps = max(1, min(100, 100_000 // batch))
    with torch.no_grad():
        model(lonlat)
        start = time.perf_counter()
        for _ in range(reps):
            model(lonlat)
    return batch * reps / (time.perf_counter() - start)


def tower_tiles_per_s(name: str, n: int) -> float:
    """timm towers as SatCLIP builds them (13 input channels, 256-d head), eval mode, batch n."""
    import timm

    model = timm.create_model(name, in_chans=13, num_classes=256, pretrained=False).eval()
    size = 224 if name.startswith("vit") else 256
    x = torch.rand(n, 13, size, size)
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        model(x)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--towers", action="store_true", help="only the image towers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [1, 1000, 65_536] if args.quick else [1, 1000, 65_536, 1_000_000]
    result = {}
    levels = () if args.towers else (10, 40)
    for L in levels:
        for b in batches:
            result[f"embed_l{L}_b{b}"] = embed_points_per_s(L, b)
    for b in (batches[1:3] if levels else ()):
        result[f"geoclip_b{b}"] = geoclip_points_per_s(b)
    for L in levels:
        result[f"train_l{L}_b8192"] = train_step_seconds(L, reps=2 if args.quick else 4)
    for name in ("resnet18", "resnet50", "vit_small_patch16_224"):
        key = "tower_" + {"vit_small_patch16_224": "vit16"}.get(name, name)
        result[key] = tower_tiles_per_s(name, 4 if args.quick else 16)
    result["threads"] = args.threads
    result["torch"] = torch.__version__
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
