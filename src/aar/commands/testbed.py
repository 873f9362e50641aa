"""``aar testbed ...``: testbeds from the original study's data layout, on Hugging Face models."""

from __future__ import annotations

import typer

from aar.commands.common import fail as _fail

testbed_app = typer.Typer(help="Testbeds from the original study's data layout, on Hugging Face models.",
                          no_args_is_help=True)


def _tristate(value: str, flag: str) -> bool | None:
    if value not in ("auto", "on", "off"):
        _fail(f"{flag} must be auto, on or off, not {value!r}")
    return None if value == "auto" else value == "on"


@testbed_app.command("import")
def testbed_import(
    source: str = typer.Argument(..., help="A domain folder with train_label/train_unlabel/test .jsonl."),
    name: str = typer.Option(..., help="Testbed name (letters, digits, '_', '.', '-')."),
    weak_model: str = typer.Option(..., help="Weak teacher: local folder, .gguf file or hub id."),
    strong_model: str = typer.Option(..., help="Strong student: local folder, .gguf file or hub id."),
    dev_size: int = typer.Option(0, min=0, help="Carve a dev split of this size out of train_unlabel."),
    max_length: int = typer.Option(1024, help="Tokens per input (longer inputs are truncated)."),
    lora_rank: int = typer.Option(32, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, help="LoRA alpha."),
    epochs: int = typer.Option(5, help="Fine-tuning epochs (weak, ceiling and transfer)."),
    lr: float = typer.Option(1e-4, help="Learning rate."),
    batch_size: int = typer.Option(32, help="Examples per optimizer step."),
    grad_accum: int = typer.Option(4, help="Micro-batches per optimizer step (gradient accumulation)."),
    warmup: float = typer.Option(0.1, help="Share of steps with linear warmup."),
    weak_epochs: int | None = typer.Option(None, help="Weak teacher's epochs (default: --epochs)."),
    weak_lr: float | None = typer.Option(None, help="Weak teacher's learning rate (default: --lr)."),
    weak_chat_template: str = typer.Option("auto", help="Chat-template prompts, weak model: auto|on|off."),
    strong_chat_template: str = typer.Option("auto", help="Chat-template prompts for the strong model."),
    inference: str = typer.Option("transformers", help="Prediction engine: transformers or vllm (GPU)."),
    description: str = typer.Option("", help="One line shown to agents."),
    weak_outputs: str | None = typer.Option(
        None, help="The original's weak-teacher outputs: cache_results/<dataset>_weak_artifacts[/<config>]."
    ),
) -> None:
    """Register an original-layout domain folder as a testbed (stored under $AAR_HOME/imported)."""
    from pathlib import Path

    from aar.w2s.cache import aar_home
    from aar.w2s.testbeds.imported import LayoutError, import_testbed
    from aar.w2s.train import TrainConfig

    try:
        strong_cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, grad_accum_steps=grad_accum,
                                 warmup_frac=warmup)
        weak_cfg = TrainConfig(epochs=weak_epochs or epochs, lr=weak_lr or lr, batch_size=batch_size,
                               grad_accum_steps=grad_accum, warmup_frac=warmup)
        tb = import_testbed(
            Path(source), name, weak_model, strong_model, aar_home(), dev_size=dev_size,
            weak_train=weak_cfg, strong_train=strong_cfg,
            weak_chat_template=_tristate(weak_chat_template, "--weak-chat-template"),
            strong_chat_template=_tristate(strong_chat_template, "--strong-chat-template"),
            model_settings={"max_length": max_length, "inference": inference,
                            "lora": {"rank": lora_rank, "alpha": lora_alpha}},
            description=description, weak_outputs=Path(weak_outputs) if weak_outputs else None,
        )
    except (LayoutError, ValueError, OSError) as e:
        _fail(str(e))
    sizes = ", ".join(f"{k} {v}" for k, v in tb.dataset.sizes().items())
    typer.echo(f"imported {tb.name} ({tb.spec.world}): {sizes}\n  {tb.path}")
    if tb.spec.weak_outputs:
        w = tb.spec.weak_outputs
        typer.echo(f"  original weak outputs: seeds {', '.join(map(str, w['original_seeds']))} "
                   f"(aar seeds 0..{len(w['original_seeds']) - 1}) of {w['config']}; published weak_acc "
                   f"{', '.join('?' if a is None else f'{a:.4f}' for a in w['weak_acc'])}")


@testbed_app.command("list")
def testbed_list() -> None:
    """List the imported testbeds."""
    from aar.w2s.cache import aar_home
    from aar.w2s.testbeds.imported import imported_names, load_imported

    for name in imported_names(aar_home()):
        tb = load_imported(name, aar_home())
        sizes = ", ".join(f"{k} {v}" for k, v in tb.dataset.sizes().items())
        typer.echo(f"{name:<16} {tb.spec.world:<9} {sizes}\n  weak {tb.spec.weak['path']}\n"
                   f"  strong {tb.spec.strong['path']}")


@testbed_app.command("bundle")
def testbed_bundle(
    name: str = typer.Argument(..., help="Testbed name (built-in or imported)."),
    out: str = typer.Option(..., help="Write the VaultBundle JSON here (for `aar server register-testbed`)."),
    seeds: int = typer.Option(3, min=1, max=20, help="Reference seeds (0..N-1) of weak and ceiling runs."),
    baselines: str = typer.Option("", help="Comma-separated shipped methods to add as references."),
) -> None:
    """Train weak teachers and ceilings (cached) and write the server's ground-truth bundle."""
    from pathlib import Path

    from aar.w2s.cache import CacheError
    from aar.w2s.methods.base import MethodError
    from aar.w2s.public import build_vault_bundle
    from aar.w2s.testbeds.registry import UnknownTestbedError, load_testbed

    try:
        tb = load_testbed(name)
        bundle = build_vault_bundle(tb, list(range(seeds)), [b for b in baselines.split(",") if b.strip()],
                                    on_progress=typer.echo)
    except (UnknownTestbedError, MethodError, CacheError) as e:
        _fail(str(e))
    bundle.save(Path(out))
    typer.echo(f"wrote {out}: {len(bundle.labels)} test labels (keep it away from agents)")


@testbed_app.command("export")
def testbed_export(
    name: str = typer.Argument(..., help="Testbed name (built-in or imported)."),
    dest: str = typer.Argument(..., help="Folder for the agent-visible view (no labels)."),
    seeds: int = typer.Option(3, min=1, max=20, help="Teacher seeds (0..N-1) to include."),
) -> None:
    """Write the public view agents get: unlabelled inputs, teacher outputs, the strong model."""
    from pathlib import Path

    from aar.w2s.cache import CacheError
    from aar.w2s.public import export_public_view
    from aar.w2s.testbeds.registry import UnknownTestbedError, load_testbed

    try:
        path = export_public_view(load_testbed(name), Path(dest), list(range(seeds)))
    except (UnknownTestbedError, CacheError) as e:
        _fail(str(e))
    typer.echo(f"wrote {path}")
