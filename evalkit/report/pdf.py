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


def print_pdf(html_path: Path, pdf_path: Path, timeout: float = 120.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; atomic like every output."""
    browser = find_chromium()
    if browser is None:
        raise EvalkitError(str(pdf_path), "no Chromium found to print the PDF",
                           "install Chromium (Debian: apt-get install chromium) or drop --pdf")
    handle, temp = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".part", dir=pdf_path.parent)
    os.close(handle)
    profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={temp}",
               Path(html_path).resolve().as_uri()]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
        if os.path.getsize(temp) == 0:
            raise EvalkitError(str(pdf_path), "Chromium wrote an empty PDF", "open report.html and print it from a browser")
        os.replace(temp, pdf_path)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise EvalkitError(str(pdf_path), f"Chromium could not print the report ({type(exc).__name__})",
                           "open report.html and print it from a browser") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
        shutil.rmtree(profile, ignore_errors=True)
    return pdf_path
