"""What a release needs: one version, a license the metadata declares, citations, a GPU extra."""

import importlib.metadata
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(code):
    """Runs `code` in a fresh interpreter (nothing imported yet) and returns its stdout."""
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, cwd=REPO).stdout.strip()


def test_the_package_version_is_the_installed_distribution_version():
    printed = run_python("import tfwsar; print(tfwsar.__version__)")
    assert printed == importlib.metadata.version("tfwsar")


def test_the_version_is_written_in_one_place():
    init = (REPO / "tfwsar" / "__init__.py").read_text(encoding="utf-8")
    assert len(re.findall(r"^__version__ = \"[^\"]+\"$", init, re.MULTILINE)) == 1
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    assert "version=VERSION" in setup and not re.search(r"version=\"", setup)
    citation = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    assert not re.search(r"^version:", citation, re.MULTILINE)


def test_importing_the_package_does_no_work():
    loaded = run_python("import sys, tfwsar; print(sorted(m for m in sys.modules "
                        "if m.split('.')[0] in ('tensorflow', 'keras', 'numpy', 'tfwsar')))")
    assert loaded == "['tfwsar']"


def test_the_apache_license_is_shipped_and_declared_in_the_metadata():
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    metadata = importlib.metadata.metadata("tfwsar")
    assert metadata["License"] == "Apache-2.0"
    assert "License :: OSI Approved :: Apache Software License" in metadata.get_all("Classifier")


def test_the_gpu_extra_pins_tensorflow_with_its_cuda_libraries():
    requirements = importlib.metadata.requires("tfwsar")
    assert 'tensorflow[and-cuda]==2.17.1; extra == "gpu"' in requirements
    assert "tensorflow==2.17.1" in requirements  # The same version as the core install.


def test_the_readme_ends_with_bibtex_for_every_method_dataset_and_baseline():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert headings[-1] == "Citing"
    citing = readme[readme.index("\n## Citing\n"):]
    for title in ("Learning Transferable Self-attentive Representations for Action Recognition",
                  "Weakly Supervised Video Action Recognition with Convex Clustering",
                  "{THUMOS} Challenge", "{ActivityNet}: A Large-Scale Video Benchmark",
                  "{UCF101}: A Dataset of 101 Human Actions", "{W-TALC}",
                  "Sparse Temporal Pooling Network", "Background Suppression Network"):
        assert title in " ".join(citing.split()), title
    baselines = citing[citing.index("### Baselines"):]
    assert {"paul2018wtalc", "nguyen2018stpn", "lee2020basnet"} <= set(
        re.findall(r"@\w+\{(\w+),", baselines))
    assert citing.count("```bibtex") == 3 and citing.count("```") == 6


def test_the_citation_file_describes_the_package():
    citation = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    assert citation.startswith("cff-version: 1.2.0\n")
    for key in ("message:", "title:", "authors:", "license: Apache-2.0"):
        assert re.search(rf"^{key}", citation, re.MULTILINE), key


def test_every_recipe_readme_names_its_paper():
    readmes = sorted((REPO / "recipes").glob("*/README.md"))
    assert readmes
    for readme in readmes:
        text = readme.read_text(encoding="utf-8")
        assert re.search(r"^Paper: .+, \".+", text, re.MULTILINE), readme
