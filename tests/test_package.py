import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_package_imports_no_qt_napari_or_torch():
    code = (
        "import sys, napari_rockseg, napari_rockseg.engine; "
        "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'PySide6', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_manifest_validates_and_top_level_is_the_packaged_file():
    top, packaged = ROOT / "napari.yaml", ROOT / "src" / "napari_rockseg" / "napari.yaml"
    assert top.is_symlink() and os.path.samefile(top, packaged)
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-rockseg")
    assert manifest.name == "napari-rockseg"
    assert {w.display_name for w in manifest.contributions.widgets} >= {
        "Segment",
        "Train and retrain",
        "Evaluate and compare",
        "Phase report",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-rockseg"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_console_script_installed():
    exe = Path(sys.executable).parent / "rockseg"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "predict" in proc.stdout
