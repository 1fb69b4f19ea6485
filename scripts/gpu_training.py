"""Training throughput of a NAS-Bench-201 network with and without mixed precision.

Trains the network of one NB201 cell for ``--epochs`` epochs on random CIFAR-sized tensors
(3x32x32, 10 classes) through :class:`gates_sampler.benchmarks.TrainingEvaluator`, once in float32
and once with mixed precision (float16 + gradient scaling on CUDA, bfloat16 autocast on CPU), and
prints a table of images/s (training, last epoch), wall time and peak GPU memory.

    python scripts/gpu_training.py                         # CUDA, C=16, N=5, 10240 images, batch 256
    python scripts/gpu_training.py --device cpu --C 4 --N 1 --n-images 512 --batch-size 64   # CPU check

Exits with a message when CUDA is asked for but absent.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.utils.data import TensorDataset

from gates_sampler.benchmarks import TrainingEvaluator, TrainingSettings
from gates_sampler.spaces import NB201Space

# A strong NAS-Bench-201 cell (mostly 3x3 convolutions): the costliest kind to train.
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def random_cifar(n: int, seed: int) -> TensorDataset:
    """``n`` random 3x32x32 float images with random labels in 0..9."""
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))


def measure(args: argparse.Namespace, amp: bool, train: TensorDataset, val: TensorDataset) -> dict[str, float]:
    """Train once; return images/s of the last epoch's training, wall time and peak memory."""
    space = NB201Space()
    evaluator = TrainingEvaluator(
        space,
        train,
        val_dataset=val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        network={"C": args.C, "N": args.N, "num_classes": 10},
        device=args.device,
        seed=args.seed,
        settings=TrainingSettings(amp=amp),
    )
    cuda = evaluator.device.type == "cuda"
    train_times: list[float] = []
    original = evaluator._train_epoch

    def timed_epoch(*a: object, **kw: object) -> None:
        # Time only the training pass (validation excluded), synchronising so GPU work is counted.
        if cuda:
            torch.cuda.synchronize(evaluator.device)
        t0 = time.perf_counter()
        original(*a, **kw)
        if cuda:
            torch.cuda.synchronize(evaluator.device)
        train_times.append(time.perf_counter() - t0)

    evaluator._train_epoch = timed_epoch  # type: ignore[method-assign]
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(evaluator.device)
    start = time.perf_counter()
    result = evaluator.train(space.parse(CELL))
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(evaluator.device) / 2**20 if cuda else float("nan")
    return {
        "images_per_s": len(train) / train_times[-1],
        "wall_s": wall,
        "peak_mib": peak,
        "val_acc": result.val_acc,
        "params": result.n_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-images", type=int, default=10240, help="random training images")
    parser.add_argument("--n-val", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(
            "CUDA is not available on this machine; this benchmark measures GPU training. "
            "Run it on a CUDA machine, or pass --device cpu (with small --C/--N/--n-images) to check the code path."
        )

    train, val = random_cifar(args.n_images, args.seed), random_cifar(args.n_val, args.seed + 1)
    device_name = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else "CPU"
    print(
        f"NB201 C={args.C} N={args.N}, {args.n_images} random 3x32x32 images, batch {args.batch_size}, "
        f"{args.epochs} epochs, device {args.device} ({device_name}), torch {torch.__version__}"
    )
    print(f"{'precision':>16} {'images/s':>10} {'wall s':>8} {'peak MiB':>9} {'params':>9}")
    for amp in (False, True):
        r = measure(args, amp, train, val)
        label = "float32" if not amp else ("fp16 autocast" if args.device.startswith("cuda") else "bf16 autocast")
        peak = "n/a" if r["peak_mib"] != r["peak_mib"] else f"{r['peak_mib']:.0f}"
        print(f"{label:>16} {r['images_per_s']:>10.0f} {r['wall_s']:>8.1f} {peak:>9} {int(r['params']):>9}")


if __name__ == "__main__":
    main()
