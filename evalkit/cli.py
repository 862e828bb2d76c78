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

from . import __version__
from .errors import EvalkitError


def _friendly(command):
    """Turn every problem into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                # numerical libraries' warnings would break the one-line contract; what
                # matters to the user is reported in checks or as an error
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
        except Exception as exc:  # a bug of ours: still one line, never a traceback
            if os.environ.get("EVALKIT_DEBUG"):
                raise
            text = " ".join(str(exc).split())[:300]
            click.echo(f"error: evalkit: internal error ({type(exc).__name__}: {text}); "
                       "please report it with the design file (set EVALKIT_DEBUG=1 for details)", err=True)
            sys.exit(1)

    return wrapper


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
            self.stream.write(f"  {name}: {seconds:.1f} s\n")
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
        self.stream.write(line[:200])
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
    click.echo(summarize(loaded, data))
    click.echo("ok: the design and its data are valid")


@main.command()
@click.argument("design", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [reports/out/<design file stem>/].")
@click.option("--pdf", is_flag=True, help="Also print report.pdf through a local Chromium.")
@_friendly
def run(design, out_dir, pdf):
    """Fit every analysis in DESIGN's plan; write report.html and results.json."""
    from .design import load_design
    from .pipeline import run as run_plan
    from .data.progress import stage
    from .report.render import render_html
    from .results import write_atomic

    loaded = load_design(design)
    command = "evalkit run " + shlex.quote(str(design)) + ("" if out_dir is None else f" --out {shlex.quote(str(out_dir))}")
    out_dir = out_dir or Path("reports") / "out" / design.stem
    with _progress():
        count = len(loaded.analysis)
        with stage(f"evalkit run {design.name}: data and {count} {'analysis' if count == 1 else 'analyses'}"):
            results = run_plan(loaded, command=command)
        # both files are rendered in memory first: a failure leaves nothing half-written
        with stage("render the report"):
            json_text = results.to_json_text()
            html = render_html(results)
    _check_writable(out_dir)
    write_atomic(out_dir / "results.json", json_text)
    write_atomic(out_dir / "report.html", html)
    written = [out_dir / "report.html", out_dir / "results.json"]
    if pdf:
        from .report.pdf import print_pdf

        with _progress(), stage("print report.pdf"):
            written.append(print_pdf(out_dir / "report.html", out_dir / "report.pdf"))
    click.echo(results.evidence.get("headline", ""))
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _check_writable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EvalkitError(str(out_dir), "exists and is not a folder", "choose another --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvalkitError(str(out_dir), f"cannot create the output folder ({exc.strerror})", "choose another --out") from None
    if not os.access(out_dir, os.W_OK):
        raise EvalkitError(str(out_dir), "the output folder is not writable", "choose another --out")


@main.command()
@click.argument("results_path", metavar="RESULTS", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write [report.html beside RESULTS].")
@_friendly
def report(results_path, out_file):
    """Re-render a report from RESULTS (a results.json) without refitting."""
    from .report.render import render_html
    from .results import load_results, write_atomic

    results = load_results(results_path)
    html = render_html(results)
    target = out_file or results_path.with_name("report.html")
    write_atomic(target, html)
    click.echo(f"wrote {target}")


@main.command()
@click.argument("name", type=click.Choice(["spoc-rollout", "sicily-smoking-ban"]))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the design and data to [./<name>].")
@click.option("--seed", type=int, default=None, help="Seed for a simulated example [the example's own].")
@click.option("--scale", type=click.Choice(["regional", "national"]), default="regional", show_default=True,
              help="spoc-rollout: 13 forces (CSV) or a national extract of 43 forces, about 3.5 million "
                   "episodes (Parquet).")
@_friendly
def example(name, out_dir, seed, scale):
    """Write a shipped example (design file and data) to a folder."""
    from .data.progress import stage
    from .examples import write_example

    if scale != "regional" and name != "spoc-rollout":
        raise click.UsageError(f"--scale {scale} is only for spoc-rollout (a simulated example)")
    out_dir = out_dir or Path(name)
    with _progress(), stage(f"write the {name} example ({scale})"):
        design_path = write_example(name, out_dir, seed=seed, scale=scale)
    click.echo(f"wrote {design_path}; run it with: evalkit run {shlex.quote(str(design_path))}")
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
@_friendly
def schema():
    """Print the design file's JSON Schema (for editors)."""
    from .design import design_json_schema

    click.echo(design_json_schema())


if __name__ == "__main__":  # pragma: no cover
    main()
