"""``inbedder data`` (training data from labelled files) and ``inbedder train`` (answer, instructor, recipe).

Examples::

    inbedder data from-labels train.csv --label category -q category="What is the customer asking about?" \\
        -q category="What does the customer want?" -o data/qa
    inbedder data from-labels reviews.csv --label aspect --label polarity --questions q.json --format medi -o data/medi
    inbedder train answer -m smollm2-135m-instruct -d data/qa/train.jsonl --dev data/qa/dev.jsonl -o my-model
    inbedder train instructor -m minilm -d data/medi/train.jsonl -o my-encoder
    inbedder train recipe

User errors exit with status 1 and one line on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..prompts import INBEDDER_PATTERN
from .common import batch_size_option, device_option, model_option, output_option, seed_option

micro_batch = batch_size_option(8, "Records per micro-batch.", env=False)


def _loop_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--steps", type=int, default=200, show_default=True, help="Optimizer steps."),
        micro_batch,
        click.option("--grad-accum", type=int, default=1, show_default=True,
                     help="Micro-batches per optimizer step (effective batch = batch size × this)."),
        click.option("--lr", type=float, default=5e-5, show_default=True, help="Peak learning rate (AdamW)."),
        click.option("--warmup", type=float, default=0.1, show_default=True,
                     help="Share of steps with a linear warmup; then linear decay to 0."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        seed_option("Seed of the batch order and init."),
        click.option("--save-every", type=int, default=50, show_default=True,
                     help="Write a resumable checkpoint every N steps."),
        click.option("--stop-after", type=int, help="Stop after N steps (no final save); run again to resume."),
        click.option("--checkpoint", metavar="DIR", help="Checkpoint folder [default: OUTPUT/checkpoint]."),
        click.option("--bf16/--no-bf16", default=None,
                     help="bfloat16 autocast (also on CPU) [default: where the device has fast bf16 kernels]."),
        click.option("--threads", type=int, help="torch threads [default: torch's]."),
        device_option(env=False),
        click.option("--dev", "dev_path", metavar="FILE", help="Dev records: loss before and after training."),
        click.option("--eval-data", metavar="FILE", help="A labelled table to score the model on while it trains "
                     "(instruction awareness, with --eval-axis); the best scored weights are saved."),
        click.option("--eval-axis", "eval_axes", multiple=True, metavar="COLUMN=INSTRUCTION",
                     help="A label column of --eval-data and its instruction (two or more)."),
        click.option("--eval-every", type=int, help="Score every N steps (and after the last) [default: after the "
                                                    "last only]."),
        click.option("--eval-limit", type=int, default=200, show_default=True, help="Rows of --eval-data scored."),
        click.option("--eval-reencoder", metavar="MODEL",
                     help="Score the answers embedded by MODEL (e.g. minilm) instead of the hidden states."),
        click.option("-d", "--data", "data_path", required=True, metavar="FILE", help="Training records (.jsonl)."),
        output_option("Where to save the trained model.", "DIR", required=True),
        model_option("Base model: alias, directory or .gguf file.", env=False, required=True),
    ]
    for option in options:
        f = option(f)
    return f


def _loop(o: dict[str, Any]) -> Any:
    import torch

    from ..training.loop import LoopSettings

    if o.get("threads"):
        torch.set_num_threads(o["threads"])
    return LoopSettings(steps=o["steps"], batch_size=o["batch_size"], grad_accum=o["grad_accum"], lr=o["lr"],
                        warmup=o["warmup"], weight_decay=o["weight_decay"], seed=o["seed"],
                        save_every=o["save_every"], bf16=o["bf16"], stop_after=o["stop_after"],
                        eval_every=o["eval_every"])


def _evaluation(o: dict[str, Any], answers: bool = True) -> Any:
    """``score(model)`` from the --eval-* options: the awareness summary on --eval-data; None without it.
    ``answers``: whether the model generates answers (which --eval-reencoder embeds)."""
    from ..errors import InputError

    if o["eval_reencoder"] and not answers:
        raise InputError("--eval-reencoder embeds generated answers, and an INSTRUCTOR-family model generates "
                         "none; leave it out")
    if not o["eval_data"]:
        if o["eval_axes"] or o["eval_every"] or o["eval_reencoder"]:
            raise InputError("--eval-axis, --eval-every and --eval-reencoder need --eval-data FILE")
        return None
    from ..evaluation import EvalSettings, load_awareness
    from ..io.table import parse_assignments

    axes = parse_assignments(o["eval_axes"], "--eval-axis")
    task = load_awareness(o["eval_data"], axes, limit=o["eval_limit"], seed=o["seed"])
    options = {"reencoder": o["eval_reencoder"]} if o["eval_reencoder"] else {}
    return task.scorer(EvalSettings(batch_size=16, seed=o["seed"], progress=False), **options)


def _report(result: Any, output: str) -> None:
    loop = result.loop
    if not loop.finished:
        click.echo(f"stopped after step {loop.step}; run the same command again to resume from the last checkpoint",
                   err=True)
        return
    first = f"{loop.losses[0]:.4f}" if loop.losses else "-"
    dev = ", ".join(f"dev loss {k} {v:.4f}" for k, v in result.dev_loss.items())
    best = f"; {_kept(loop.evals, loop.best_step)}" if loop.evals else ""
    click.echo(f"trained {loop.step} steps (resumed from {loop.resumed_from}); train loss {first} → "
               f"{loop.losses[-1]:.4f}{'; ' + dev if dev else ''}; saved to {output}{best}", err=True)


def _kept(evals: list[tuple[int, float]], best_step: int) -> str:
    """Which step's weights a run with periodic evaluation saved, and the score at each step."""
    return (f"saved the weights of step {best_step} (evaluation {dict(evals)[best_step]:.4f}; at each step: "
            f"{', '.join(f'{s}: {v:.4f}' for s, v in evals)})")


@click.group("train")
def train_group() -> None:
    """Train models: answer (causal and masked LMs), instructor (contrastive), recipe (inbedder-smollm2)."""


@train_group.command("answer")
@_loop_options
@click.option("--max-length", type=int, default=256, show_default=True, help="Tokens per example (input cut first).")
@click.option("--pattern", help="The prompt, with {input} and {instruction}, or 'chat' / 'chat:<user message>' "
                                "for a causal LM's chat template (saved with the model) "
                                "[default: InBedder's '### Input: ... ### Response:'].")
@click.option("--lora/--full", default=False, show_default=True, help="LoRA adapters (merged on save) or all weights.")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--group-by-length/--no-group-by-length", default=True, show_default=True,
              help="Batches of examples of similar length (less padding, faster steps).")
def answer(**o: Any) -> None:
    """Fine-tune a causal or masked LM to answer questions about texts (loss on the answer only)."""
    from ..training.answer import AnswerSettings, train_answer
    from .common import user_errors, warnings_as_lines

    with user_errors(), warnings_as_lines():
        settings = AnswerSettings(max_length=o["max_length"], lora=o["lora"], lora_r=o["lora_r"],
                                  lora_alpha=o["lora_alpha"], group_by_length=o["group_by_length"],
                                  **({"pattern": o["pattern"]} if o["pattern"] else {}))
        result = train_answer(o["model"], o["data_path"], o["output"], dev=o["dev_path"], settings=settings,
                              loop=_loop(o), checkpoint=o["checkpoint"], device=o["device"], evaluate=_evaluation(o))
    _report(result, o["output"])


@train_group.command("instructor")
@_loop_options
@click.option("--temperature", type=float, default=0.1, show_default=True, help="Softmax temperature of the loss.")
@click.option("--symmetric/--one-way", default=True, show_default=True,
              help="Also score positives against queries.")
@click.option("--max-length", type=int, help="Tokens per text [default: the model's].")
def instructor(**o: Any) -> None:
    """Train an INSTRUCTOR-family encoder contrastively on MEDI records."""
    from ..training.instructor import ContrastiveSettings, train_instructor
    from .common import user_errors, warnings_as_lines

    with user_errors(), warnings_as_lines():
        settings = ContrastiveSettings(o["temperature"], o["symmetric"], o["max_length"])
        result = train_instructor(o["model"], o["data_path"], o["output"], dev=o["dev_path"], settings=settings,
                                  loop=_loop(o), checkpoint=o["checkpoint"], device=o["device"],
                                  evaluate=_evaluation(o, answers=False))
    _report(result, o["output"])


@train_group.command("recipe")
@click.option("--data-root", envvar="INBEDDER_DATA", show_envvar=True, metavar="DIR",
              help="The public datasets folder (required: this option or INBEDDER_DATA).")
@output_option("Where to save [default: the user data dir's models/inbedder-smollm2, which the "
               "`inbedder-smollm2` alias loads].", "DIR")
@click.option("--base-model", default="smollm2-135m-instruct", show_default=True,
              help="The causal LM to train: an alias, directory or .gguf file (another than the default needs -o).")
@click.option("--steps", type=int, default=450, show_default=True, help="Optimizer steps.")
@click.option("--qa-records", type=int, default=2000, show_default=True, help="Free-form QA records.")
@click.option("--per-axis", type=int, default=240, show_default=True,
              help="Label-question records per labelled axis (balanced over its classes).")
@click.option("--yes-no-per-axis", type=int, default=40, show_default=True,
              help="Yes/no questions about one label, per labelled axis (half answered yes).")
@click.option("--relation-records", type=int, default=240, show_default=True,
              help="FewRel questions on how two entities of a sentence are related.")
@click.option("--dev-records", type=int, default=200, show_default=True, help="Dev records (loss before/after).")
@click.option("--max-length", type=int, default=128, show_default=True, help="Tokens per training example.")
@micro_batch
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--lora/--full", default=False, show_default=True)
@seed_option()
@click.option("--threads", type=int, default=2, show_default=True, help="torch threads.")
@device_option(env=False)
@click.option("--eval/--no-eval", "evaluate", default=True, show_default=True,
              help="Held-out awareness (SemEval-14, MLMA) of the base and the trained model.")
@click.option("--eval-limit", type=int, default=400, show_default=True, help="Rows per held-out dataset.")
@click.option("--stop-after", type=int, help="Stop after N steps; run again to resume.")
@click.option("--pattern", default=INBEDDER_PATTERN, help="The prompt trained and read, with {input} and "
              "{instruction}, or 'chat' / 'chat:<user message>' for the model's chat template [default: InBedder's].")
@click.option("--readout", type=click.Choice(["re_encode", "avg_gen", "fst_gen", "avg_ppt"]), default="re_encode",
              show_default=True, help="How the trained model embeds (saved in its inbedder.json): its answer "
              "re-encoded by --reencoder, or its hidden states.")
@click.option("--reencoder", default="minilm", show_default=True, help="The model that embeds answers (re_encode).")
@click.option("--layer", type=int, help="The hidden state fst_gen, avg_ppt and avg_gen read (0 = embeddings, "
              "-1 = last) [default: the last].")
@click.option("--select-every", type=int, help="Score the readout on the selection set (CLINC150 test, domain × "
              "intent) every N steps and after the last; save the best step's weights [default: the last step's].")
@click.option("--select-limit", type=int, default=400, show_default=True, help="Rows of the selection set scored.")
@click.option("--unseen-selection/--seen-selection", default=False, show_default=True,
              help="Leave the selection set's five CLINC150 domains (all their intents) out of training, so that it "
              "asks for labels the model never trained on.")
def recipe(data_root: str | None, output: str | None, threads: int, device: str | None, evaluate: bool,
           eval_limit: int, stop_after: int | None, **settings: Any) -> None:
    """Train the answer model `inbedder-smollm2` (SmolLM2-135M-Instruct, or --base-model into -o) on the public
    datasets and measure it on held-out ones."""
    import torch

    from ..training.recipe import RecipeSettings, default_output, run_recipe
    from .common import user_errors, warnings_as_lines

    torch.set_num_threads(threads)
    with user_errors(), warnings_as_lines():
        out = Path(output) if output else None  # run_recipe's default: the inbedder-smollm2 alias' folder
        report = run_recipe(out, Path(data_root) if data_root else None, RecipeSettings(**settings), evaluate=evaluate,
                            eval_limit=eval_limit, stop_after=stop_after, device=device)
    if not report["finished"]:
        click.echo(f"stopped after step {report['steps']}; run the same command again to resume", err=True)
        return
    click.echo(f"saved to {out or default_output()} ({report['train_records']} training records, "
               f"{report['steps']} steps)", err=True)
    if report["selection"]:
        click.echo(f"selection set: {_kept(report['selection'], report['best_step'])}", err=True)
    heldout = report.get("heldout") or {}
    for dataset in heldout.get("base", {}):
        scores = ", ".join(f"{name} {heldout[name][dataset]['metrics']['summary']:+.3f}" for name in heldout)
        click.echo(f"held-out awareness (summary) {dataset}: {scores}", err=True)


@train_group.command("distill")
@click.option("--teacher", default="qwen2.5-coder-1.5b-instruct", show_default=True,
              help="The teacher answer model (alias, directory, .gguf or hub id).")
@click.option("--student", default=None, help="The student answer model [default: inbedder.DEFAULT_ANSWER_MODEL].")
@output_option("Where to save the student's adapter (load() opens the folder).", "DIR", required=True)
@click.option("--data-root", envvar="INBEDDER_DATA", show_envvar=True, metavar="DIR",
              help="The public datasets folder to build the question bank from.")
@click.option("--bank", "bank_path", metavar="FILE", help="A question bank instead: a table with text and question.")
@click.option("--work", metavar="DIR", help="Bank, teacher file and checkpoint [default: OUTPUT.work].")
@click.option("--pairs", type=int, default=2000, show_default=True, help="Rows of the built question bank.")
@click.option("--generic/--dataset-only", default=True, show_default=True,
              help="Ask generic questions (tone, genre, audience, ...) as well as each dataset's own.")
@click.option("--pattern", default=None, help="The prompt teacher and student read [default: the student's, the "
                                              "default answer model's one-word chat prompt].")
@click.option("--top-k", type=int, default=20, show_default=True, help="Teacher tokens kept per pair.")
@click.option("--answer-tokens", type=int, default=0, show_default=True,
              help="Also record the teacher's greedy answer of up to N tokens (needed by --answer-weight).")
@click.option("--answer-weight", type=float, default=0.0, show_default=True,
              help="Weight of the cross-entropy on the teacher's answer (0: KL only).")
@click.option("--teacher-vectors", is_flag=True,
              help="Also record the teacher's embedding of each pair (needed by --similarity-weight).")
@click.option("--similarity-weight", type=float, default=0.0, show_default=True,
              help="Weight of the loss that matches the student's similarities between texts under one question to "
                   "the teacher's (0: none).")
@click.option("--teacher-batch-size", type=int, default=8, show_default=True)
@click.option("--teacher-only", is_flag=True, help="Stop after the teacher pass (e.g. on a GPU machine).")
@click.option("--steps", type=int, default=300, show_default=True, help="Optimizer steps.")
@micro_batch
@click.option("--lr", type=float, default=2e-4, show_default=True)
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--max-length", type=int, default=256, show_default=True, help="Tokens per example (input cut first).")
@seed_option("Seed of the bank, the batch order and the init.")
@click.option("--stop-after", type=int, help="Stop after N steps; run again to resume.")
@click.option("--threads", type=int, help="torch threads [default: torch's].")
@device_option(env=False)
def distill(**o: Any) -> None:
    """Distil a teacher answer model into a student: the teacher's next-token distribution at the answer position
    (top-k, cached in OUTPUT.work/teacher.jsonl) becomes the student's LoRA target.

    \b
    inbedder train distill --data-root ../shared/data --pairs 2000 -o models/student
    inbedder train distill --bank bank.jsonl --teacher my-7b --teacher-only -o models/student   # on a GPU
    """
    import torch

    from ..errors import InputError
    from ..io.table import read_table
    from ..registry import DEFAULT_ANSWER_MODEL
    from ..training.distill import DistillSettings, run_distill, student_pattern
    from ..training.loop import LoopSettings
    from ..training.teacher import TeacherSettings
    from .common import user_errors, warnings_as_lines

    if o["threads"]:
        torch.set_num_threads(o["threads"])
    with user_errors(), warnings_as_lines():
        student = o["student"] or DEFAULT_ANSWER_MODEL
        pattern = o["pattern"] or student_pattern(student)
        if o["bank_path"] and o["data_root"]:
            raise InputError("give --bank or --data-root, not both")
        rows = None
        if o["bank_path"]:
            table = read_table(o["bank_path"])
            table.require("text", "question")
            rows = table.rows
        teacher_settings = TeacherSettings(pattern=pattern, top_k=o["top_k"], answer_tokens=o["answer_tokens"],
                                           vectors=o["teacher_vectors"], batch_size=o["teacher_batch_size"],
                                           max_length=o["max_length"])
        settings = DistillSettings(answer_weight=o["answer_weight"], similarity_weight=o["similarity_weight"],
                                   lora_r=o["lora_r"], lora_alpha=o["lora_alpha"], max_length=o["max_length"])
        loop = LoopSettings(steps=o["steps"], batch_size=o["batch_size"], lr=o["lr"], seed=o["seed"],
                            save_every=25, stop_after=o["stop_after"])
        result = run_distill(o["output"], o["teacher"], student, rows=rows, data_root=o["data_root"],
                             pairs=o["pairs"], generic=o["generic"], seed=o["seed"], work=o["work"],
                             teacher_settings=teacher_settings, settings=settings, loop=loop,
                             teacher_only=o["teacher_only"], device=o["device"])
    if isinstance(result, Path):
        click.echo(f"teacher pass written to {result}", err=True)
        return
    if not result.loop.finished:
        click.echo(f"stopped after step {result.loop.step}; run the same command again to resume", err=True)
        return
    kl = ", ".join(f"dev KL {k} {v:.4f}" for k, v in result.dev_kl.items())
    click.echo(f"trained {result.loop.step} steps on {result.examples} pairs; {kl or 'no dev pairs'}; adapter saved "
               f"to {result.output}", err=True)
