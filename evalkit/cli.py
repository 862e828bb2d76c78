"""The command line: thin wrappers that parse, call the library and print.

Exit 0 on success; 1 on a design or data problem, with one line
``error: <file>[:<key or row>]: <what>; <fix>`` and no traceback; 2 on a usage error.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
import warnings
from pathlib import Path

import click

from .version import __version__
from .errors import EvalkitError, printable


def _friendly(command):
    """Turn every problem into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .outputs import interrupted_as_keyboard_interrupt

        try:
            # record=True: numerical libraries' warnings are kept from the terminal even when a
            # library asks for them "always" at import (statsmodels does); what matters to the
            # user is reported in checks or as an error
            with warnings.catch_warnings(record=True), interrupted_as_keyboard_interrupt():
                warnings.simplefilter("ignore")
                return command(*args, **kwargs)
        except EvalkitError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("error: interrupted; nothing was written", err=True)
            sys.exit(1)
        except RecursionError:
            click.echo("error: evalkit: the input is nested too deeply to read; check the design and data files",
                       err=True)
            sys.exit(1)
        except Exception as exc:  # a bug of ours: still one line, never a traceback
            if os.environ.get("EVALKIT_DEBUG"):
                raise
            text = printable(" ".join(str(exc).split())[:300])
            click.echo(f"error: evalkit: internal error ({type(exc).__name__}: {text}); "
                       "please report it with the design file (set EVALKIT_DEBUG=1 for details)", err=True)
            sys.exit(1)

    return wrapper


def _say(text: str) -> None:
    """Print a line the user reads: control characters from data or design are shown escaped."""
    click.echo(printable(text))


class _TerminalProgress:
    """Draws the library's long steps (evalkit.data.progress) on a terminal's stderr.

    The current step is one line redrawn in place (a bar when its length is known);
    a finished step that took at least half a second leaves a line with its time.
    """

    WIDTH = 24

    def __init__(self, stream):
        self.stream = stream
        self.open: list[list] = []  # [name, total, done]

    def start(self, name, total):
        self.open.append([name, total, 0])
        self._draw()

    def advance(self, amount):
        if self.open:
            self.open[-1][2] += amount
            self._draw()

    def finish(self, name, seconds):
        if self.open:
            self.open.pop()
        self._clear()
        if seconds >= 0.5:
            self.stream.write(printable(f"  {name}: {seconds:.1f} s") + "\n")
        self._draw()

    def _clear(self):
        self.stream.write("\r\x1b[2K")
        self.stream.flush()

    def _draw(self):
        self._clear()
        if not self.open:
            return
        name, total, done = self.open[-1]
        if total:
            filled = int(self.WIDTH * min(done, total) / total)
            line = f"{name} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:,}/{total:,}"
        elif done:
            line = f"{name} ... {done:,}"
        else:
            line = f"{name} ..."
        self.stream.write(printable(line[:200]))
        self.stream.flush()


def _progress():
    """A progress bar on stderr when it is a terminal; nothing otherwise (pipes, CI, tests)."""
    import contextlib

    from .data.progress import listening

    stream = sys.stderr
    if os.environ.get("EVALKIT_NO_PROGRESS") or not stream.isatty():
        return contextlib.nullcontext()
    return listening(_TerminalProgress(stream))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalkit")
def main():
    """Evaluate interagency interventions for missing children."""


@main.command()
@click.argument("design", type=click.Path(dir_okay=False, path_type=Path))
@_friendly
def validate(design):
    """Check DESIGN and its data; print a data summary. Fits nothing."""
    from .data import load_data
    from .design import load_design
    from .pipeline import check_plan
    from .summary import summarize

    loaded = load_design(design)
    check_plan(loaded)
    with _progress():
        data = load_data(loaded)
    _say(summarize(loaded, data))
    _say("ok: the design and its data are valid")


@main.command()
@click.argument("design", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [reports/out/<design file stem>/].")
@click.option("--pdf", is_flag=True, help="Also print report.pdf through a local Chromium.")
@click.option("--diagnose", "with_diagnosis", is_flag=True,
              help="Also diagnose the design (200 simulations, into OUT/diagnosis/) and add to the report what it "
                   "could have detected (docs/diagnosis.md).")
@_friendly
def run(design, out_dir, pdf, with_diagnosis=False):
    """Fit every analysis in DESIGN's plan; write report.html and results.json."""
    from .data.progress import stage
    from .design import load_design
    from .outputs import Producer, write_outputs
    from .pipeline import run as run_plan
    from .report.render import render_html

    loaded = load_design(design)
    command = "evalkit run " + shlex.quote(str(design)) + ("" if out_dir is None else f" --out {shlex.quote(str(out_dir))}")
    out_dir = out_dir or Path("reports") / "out" / design.stem
    targets = [out_dir / "results.json", out_dir / "report.html"] + ([out_dir / "report.pdf"] if pdf else [])
    _check_out_dir(out_dir, targets)  # before the fit: a run that cannot write fails at once
    with _progress():
        count = len(loaded.analysis)
        with stage(f"evalkit run {design.name}: data and {count} {'analysis' if count == 1 else 'analyses'}"):
            if with_diagnosis:
                from .data import load_data

                data = load_data(loaded)  # loaded once: the run and every simulation share it
                results = run_plan(loaded, data=data, command=command)
            else:
                results = run_plan(loaded, command=command)
        diagnosis = None
        if with_diagnosis:
            from .diagnose import diagnose as run_diagnosis

            diagnosis = run_diagnosis(loaded, data=data, out=out_dir / "diagnosis").to_dict()
        # every output is made in full first: a failure leaves the previous outputs as they were
        with stage("render the report"):
            json_text, report_html = results.to_json_text(), render_html(results, diagnosis)
            outputs: dict[Path, Producer | str] = {targets[0]: json_text, targets[1]: report_html}
        if pdf:
            from .report.pdf import pdf_producer

            outputs[targets[2]] = pdf_producer(report_html, targets[2])
        with stage("write the outputs" + (" and print report.pdf" if pdf else "")):
            write_outputs(outputs)
    _say(results.evidence.get("headline", ""))
    _say("wrote " + ", ".join(str(p) for p in [targets[1], targets[0]] + targets[2:]))
    _say(f"note: {targets[0].name} is the analyst's unsuppressed record (exact counts, no disclosure control): "
         f"keep it with the data; publish {targets[1].name}, which is disclosure-controlled (docs/report.md)")


def _check_out_dir(out_dir: Path, targets: list[Path]) -> None:
    from .outputs import check_target

    if out_dir.exists() and not out_dir.is_dir():
        raise EvalkitError(str(out_dir), "exists and is not a folder", "choose another --out")
    if out_dir.exists() and not os.access(out_dir, os.W_OK):
        raise EvalkitError(str(out_dir), "the output folder is not writable", "choose another --out")
    for target in targets:
        check_target(target)


@main.command()
@click.argument("results_path", metavar="RESULTS", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write [report.html beside RESULTS].")
@click.option("--diagnosis", "diagnosis_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A diagnosis.json from evalkit diagnose: add what the design could have detected.")
@_friendly
def report(results_path, out_file, diagnosis_path=None):
    """Re-render a report from RESULTS (a results.json) without refitting."""
    import jinja2

    from .outputs import write_outputs
    from .report.render import render_html
    from .results import load_results

    target = out_file or results_path.with_name("report.html")
    _refuse_overwriting_input(target, results_path)
    results = load_results(results_path)
    diagnosis = None
    if diagnosis_path is not None:
        from .report.diagnosis import load_diagnosis

        diagnosis = load_diagnosis(diagnosis_path)
    try:
        html = render_html(results, diagnosis)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, jinja2.UndefinedError) as exc:
        # a results.json edited by hand (or cut short) that load_results could not tell from a good one
        raise EvalkitError(str(results_path), f"the results file is incomplete or was edited ({type(exc).__name__}: "
                           f"{str(exc)[:80]})", "run evalkit run again to rewrite it") from None
    write_outputs({target: html})
    _say(f"wrote {target}")


def _refuse_overwriting_input(target: Path, results_path: Path) -> None:
    """The report never replaces its own input, nor any file that is not an HTML report."""
    try:
        same = target.exists() and results_path.exists() and os.path.samefile(target, results_path)
    except OSError:
        same = False
    if same or target.suffix.lower() in (".json", ".yaml", ".yml", ".toml", ".csv", ".parquet", ".gz"):
        raise EvalkitError(str(target), "is the results file (or another input), not a report",
                           "give --out a new .html file, e.g. --out report.html")
    if target.is_file():
        with open(target, "rb") as handle:
            head = handle.read(512).lstrip().lower()
        if head and not head.startswith((b"<!doctype html", b"<html")):
            raise EvalkitError(str(target), "exists and is not an HTML report, so it is not replaced",
                               "give --out a new .html file, or remove that file first")


@main.command()
@click.argument("name", type=click.Choice(["spoc-rollout", "sicily-smoking-ban", "ssda903"]))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the design and data to [./<name>].")
@click.option("--seed", type=int, default=None, help="Seed for a simulated example [the example's own].")
@click.option("--scale", type=click.Choice(["regional", "national"]), default="regional", show_default=True,
              help="spoc-rollout: 13 forces (CSV) or a national extract of 43 forces, about 3.5 million "
                   "episodes (Parquet).")
@click.option("--format", "fmt", type=click.Choice(["csv", "xml"]), default="csv", show_default=True,
              help="ssda903: each return as its CSV tables or as the DfE's XML file.")
@_friendly
def example(name, out_dir, seed, scale, fmt):
    """Write a shipped example (design file and data) to a folder."""
    from .data.progress import stage
    from .examples import write_example

    if fmt != "csv" and name != "ssda903":
        raise click.UsageError(f"--format {fmt} is only for ssda903 (SSDA903 returns)")
    if scale != "regional" and name != "spoc-rollout":
        raise click.UsageError(f"--scale {scale} is only for spoc-rollout (a simulated example)")
    out_dir = out_dir or Path(name)
    with _progress(), stage(f"write the {name} example ({scale})"):
        design_path = write_example(name, out_dir, seed=seed, scale=scale, fmt=fmt)
    _say(f"wrote {design_path}; run it with: evalkit run {shlex.quote(str(design_path))} "
         f"(outputs go to reports/out/{design_path.stem}/ unless --out says otherwise)")
    _key_hint(design_path)


def _key_hint(design_path: Path) -> None:
    """Say how to set the pseudonym key when the written design needs one that is not set."""
    from .data.pseudonymise import KEY_HINT
    from .design import load_design

    data = load_design(design_path).data
    if data.layout == "episodes" and "person" in data.columns and data.person_key == "environment" \
            and not os.environ.get(data.person_key_env):
        click.echo(f"first set the key that pseudonymises child identifiers: "
                   f"export {data.person_key_env}=$({KEY_HINT})")


@main.command()
@click.argument("results_paths", metavar="RESULTS...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write synthesis.json and synthesis.html to [reports/out/synthesis/].")
@_friendly
def synthesize(results_paths, out_dir):
    """Pool several evaluations' RESULTS (results.json files) by mechanism and outcome."""
    from .synthesis import DEFAULT_OUT
    from .synthesis import synthesize as pool_evaluations

    synthesis = pool_evaluations(results_paths)
    written = synthesis.write(out_dir or DEFAULT_OUT)  # both rendered before either is written
    for summary in synthesis.summaries:
        _say(summary["sentence"])
    _say("wrote " + ", ".join(str(p) for p in written))


@main.command()
@click.argument("design", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sims", type=int, default=200, show_default=True, help="Simulated datasets per planted effect.")
@click.option("--effect", "effects", type=float, multiple=True,
              help="Planted rate ratio, repeatable (0.85 = 15% fewer) [no change and 0.85].")
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (or dask LocalCluster workers).")
@click.option("--backend", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", default=None, help="Address of a running dask scheduler (with --backend dask).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [reports/out/<design file stem>/diagnosis/].")
@click.option("--model", type=click.Choice(["data", "synthetic"]), default="data", show_default=True,
              help="Plant effects into the design's data, or simulate from its diagnose: block.")
@click.option("--reps", type=int, default=99, show_default=True,
              help="At most this many permutations per randomization-inference fit (0: as declared).")
@_friendly
def diagnose(design, sims, effects, workers, backend, scheduler, out_dir, model, reps):
    """Power, bias, coverage and false positives of every analysis in DESIGN's plan.

    Writes diagnosis.json, diagnosis.html and simulations.parquet (a rerun continues from it).
    """
    from .design import load_design
    from .diagnose import diagnose as run_diagnosis
    from .pipeline import check_plan

    loaded = load_design(design)
    check_plan(loaded)
    out_dir = out_dir or Path("reports") / "out" / design.stem / "diagnosis"
    _check_out_dir(out_dir, [out_dir / "diagnosis.json", out_dir / "diagnosis.html", out_dir / "simulations.parquet"])
    with _progress():
        result = run_diagnosis(loaded, sims=sims, effect=list(effects) or None, workers=workers, backend=backend,
                               scheduler=scheduler, out=out_dir, model=model, randomization_reps=reps or None)
    from .diagnose.html import mde_sentence

    _say(mde_sentence(result.headline))
    for a in result.analyses:
        rates = ", ".join(f"{k} {100 * v[0]:.1f}%" for k, v in a["false_positive_rate"].items() if v[0] is not None)
        _say(f"{a['method']} ({a['outcome']}): false-positive rate at no change: {rates or 'not measured'}")
    _say(f"wrote {out_dir / 'diagnosis.html'}, {out_dir / 'diagnosis.json'}, {out_dir / 'simulations.parquet'}")


@main.command()
@_friendly
def schema():
    """Print the design file's JSON Schema (for editors)."""
    from .design import design_json_schema

    click.echo(design_json_schema())


def entry() -> None:
    """The ``evalkit`` command: :func:`main`, then an exit that skips the interpreter's teardown.

    When a command has finished, its files are written and closed; what remains is Python
    freeing every object and module one by one, about half a second after a national run
    (a sixth of the plan's own time) that the user waits for and nothing uses. So, as
    Instagram's servers and other short-lived Python tools do, the exit functions registered
    with :mod:`atexit` run (logging's flush, ``weakref.finalize`` clean-ups, a pool's
    shutdown), the standard streams are flushed, and the process ends with ``os._exit`` and
    the status ``main`` chose. A bug that escapes ``main`` still ends the ordinary way, with
    its traceback. Tests and library callers use ``main`` itself and are unaffected.
    """
    import atexit

    try:
        main()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text"): Python prints the text and exits 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # closed by the caller (evalkit ... >&-): nothing to flush
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (evalkit ... | head): status 120, as Python gives
            code = code or 120
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
