"""Print report.html to PDF through a local Chromium (the report's print stylesheet applies)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import EvalkitError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def pdf_producer(html: str, where: Path, timeout: float = 120.0):
    """A producer (evalkit.outputs.write_outputs) printing ``html`` to a PDF file with headless Chromium.

    The HTML is printed from a private temporary folder, so the PDF exists before any
    output is replaced; the browser runs in its own process group, killed with all its
    children if the run is interrupted or times out, and its profile is removed.
    """
    browser = find_chromium()
    if browser is None:
        raise EvalkitError(str(where), "no Chromium found to print the PDF",
                           "install Chromium (Debian: apt-get install chromium) or drop --pdf")

    def produce(temp: Path) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="evalkit-pdf-"))
        try:
            page = scratch / "report.html"
            page.write_text(html, encoding="utf-8")
            profile = scratch / "profile"
            command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                       "--disable-background-networking", "--disable-component-update", "--disable-sync",
                       f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={temp}",
                       page.as_uri()]
            _run_browser(command, timeout, where)
            if not temp.exists() or temp.stat().st_size == 0:
                raise EvalkitError(str(where), "Chromium wrote an empty PDF", "open report.html and print it from a browser")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return produce


def _run_browser(command: list[str], timeout: float, where: Path) -> None:
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise EvalkitError(str(where), f"Chromium could not be started ({type(exc).__name__})",
                           "install Chromium (Debian: apt-get install chromium) or drop --pdf") from None
    try:
        code = process.wait(timeout=timeout)
    except BaseException as exc:  # a timeout, Ctrl-C or SIGTERM: no browser process may outlive the run
        _kill_group(process)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise EvalkitError(str(where), f"Chromium did not finish printing within {timeout:g} s",
                               "open report.html and print it from a browser") from None
        raise
    if code != 0:
        raise EvalkitError(str(where), f"Chromium could not print the report (exit status {code})",
                           "open report.html and print it from a browser")


def _kill_group(process: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def print_pdf(html_path: Path, pdf_path: Path, timeout: float = 120.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; all or nothing like every output."""
    from ..outputs import write_outputs

    html = Path(html_path).read_text(encoding="utf-8")
    write_outputs({Path(pdf_path): pdf_producer(html, Path(pdf_path), timeout)})
    return Path(pdf_path)
