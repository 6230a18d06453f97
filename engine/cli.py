"""The ``mirada`` command line. Each capability registers its sub-commands here."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import torch
import typer

from engine.data.synth.bench import bench, bench_cache
from engine.data.synth.cache import write_cache
from engine.data.synth.preview import write_grid
from engine.data.synth.sampler import SynthConfig, SynthSampler, compile_by_default
from engine.data.synth.subject import Split
from engine.device import resolve_device
from engine.runtime.cli import register as register_runtime
from engine.train.cli import register as register_train
from server.cli import register as register_serve  # aiortc and uvicorn load only when `serve` runs

app = typer.Typer(help="Mirada: real-time gaze correction for video calls.", no_args_is_help=True)
synth_app = typer.Typer(help="Procedural synthetic eye strips.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


COMPILE_HELP = "Fuse the renderer with torch.compile (default on a CPU; the first batch compiles for about a minute)."


def _compile_for(device: str, choice: bool | None) -> bool:
    """``--compile/--eager`` if given, else the renderer's default for the device."""
    return compile_by_default(device) if choice is None else choice


@synth_app.command("preview")
def synth_preview(
    out: Annotated[Path, typer.Argument(help="Output image (PNG).")],
    n: Annotated[int, typer.Option(help="Number of strips.")] = 64,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    split: Annotated[Split, typer.Option(help="Subject split to draw from.")] = Split.TRAIN,
    columns: Annotated[int, typer.Option(help="Strips per grid row.")] = 4,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Write a labelled grid of rendered strips (gaze arrows from the pupils, head arrow from the centre)."""
    if n < 1:
        raise typer.BadParameter("--n must be positive")
    sampler = SynthSampler(SynthConfig(), split=split, seed=seed, batch_size=n, device=str(resolve_device(device)))
    _, source, _ = sampler.render_pairs(0)
    # the sampler's rows come sorted by sensor scale and spectacles; the grid shows them mixed
    write_grid(source.index(torch.randperm(n, generator=torch.Generator().manual_seed(seed))), out, columns)
    typer.echo(f"wrote {n} strips to {out}")


@synth_app.command("cache")
def synth_cache(
    out: Annotated[Path, typer.Argument(help="Output HDF5 file.")],
    pairs: Annotated[int, typer.Option(help="Number of pairs to render.")] = 20000,
    split: Annotated[Split, typer.Option(help="Subject split to draw from.")] = Split.TRAIN,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Pairs per render call.")] = 256,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    compiled: Annotated[bool | None, typer.Option("--compile/--eager", help=COMPILE_HELP)] = None,
) -> None:
    """Render pairs once into a cache that training reads at memory speed."""
    if pairs < 1:
        raise typer.BadParameter("--pairs must be positive")
    dev = str(resolve_device(device))
    sampler = SynthSampler(
        SynthConfig(), split=split, seed=seed, batch_size=batch_size, device=dev, compiled=_compile_for(dev, compiled)
    )
    write_cache(sampler, out, pairs)
    typer.echo(f"wrote {pairs} pairs to {out}")


@synth_app.command("bench")
def synth_bench(
    batch_size: Annotated[int, typer.Option(help="Pairs per batch.")] = 256,
    batches: Annotated[int, typer.Option(help="Timed batches.")] = 5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache: Annotated[Path | None, typer.Option(help="Time reading this pair cache instead of rendering.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    compiled: Annotated[bool | None, typer.Option("--compile/--eager", help=COMPILE_HELP)] = None,
) -> None:
    """Print how many strips per second the renderer (or a pair cache) delivers on this device."""
    dev = str(resolve_device(device))
    if cache is not None:
        result = bench_cache(cache, dev, batch_size, batches)
    else:
        result = bench(SynthConfig(), dev, batch_size, batches, compiled=_compile_for(dev, compiled))
    if as_json:
        typer.echo(json.dumps({**result.__dict__, "strips_per_second": result.strips_per_second}))
    else:
        name = (
            torch.cuda.get_device_name()
            if result.device.startswith("cuda")
            else f"cpu ({torch.get_num_threads()} threads)"
        )
        typer.echo(
            f"{result.source}: {result.strips} strips in {result.seconds:.2f} s on {name}: "
            f"{result.strips_per_second:.0f} strips/s "
            f"(batch {result.batch_size} pairs{', compiled' if result.compiled else ''})"
        )


register_train(app)
register_runtime(app)
register_serve(app)
