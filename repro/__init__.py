"""repro: reproduce the mmpose CPM rows on COCO val2017 (see README.md)."""

__version__ = "0.1.0"
