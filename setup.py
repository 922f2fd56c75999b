"""Installs tfwsar. Pins and the reason for each are in BUILD.md."""

import pathlib
import re

import setuptools

# The version lives in tfwsar/__init__.py only; read as text so that installing imports nothing.
INIT = (pathlib.Path(__file__).parent / "tfwsar" / "__init__.py").read_text(encoding="utf-8")
VERSION = re.search(r'^__version__ = "([^"]+)"$', INIT, re.MULTILINE).group(1)

setuptools.setup(
    name="tfwsar",
    version=VERSION,
    description=(
        "Weakly supervised action recognition and temporal action localization in "
        "TensorFlow/Keras (TSRNet, convex clustering)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    classifiers=["License :: OSI Approved :: Apache Software License"],
    packages=setuptools.find_packages(include=["tfwsar", "tfwsar.*"]),
    package_data={"tfwsar": ["resources/SOURCES.md", "resources/*/*.txt", "resources/*/*.csv", "resources/*/*.json", "resources/*/*/*.txt"]},
    python_requires=">=3.9,<3.13",
    install_requires=[
        "tensorflow==2.17.1",
        "keras==3.15.1",
        "tensorflow-io==0.37.1",
        "numpy>=1.23,<2",
        "pandas>=2.0,<2.3",
        "absl-py>=1.0",
        "tqdm>=4.60",
        "matplotlib>=3.7,<3.12",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "video": ["av>=11", "opencv-python-headless>=4.8,<4.12"],
        "profile": ["tensorboard-plugin-profile==2.17.0"],
        "gpu": ["tensorflow[and-cuda]==2.17.1"],
    },
)
