"""The person-detection file format (mmpose/HRNet, COCO results of category person), entry by entry."""
import math


def detection_problem(entry) -> str:
    """What is wrong with one entry of a person-detection file (mmpose/HRNet format: image_id, category_id,
    bbox [x, y, w, h], score), or "" when nothing is. The one statement of the format's rules: the data
    stage (repro/data/download.py) and the dataset (repro/data/coco.py) both check with it."""
    if not isinstance(entry, dict):
        return "not an object"
    number = (int, float)
    for key, ok in (("image_id", lambda v: isinstance(v, int)), ("category_id", lambda v: isinstance(v, int)),
                    ("score", lambda v: isinstance(v, number)),
                    ("bbox", lambda v: isinstance(v, list) and len(v) == 4
                     and all(isinstance(b, number) and not isinstance(b, bool) for b in v))):
        if key not in entry:
            return f"field '{key}' missing"
        if isinstance(entry[key], bool) or not ok(entry[key]):
            return f"field '{key}' has a wrong type or shape: {entry[key]!r}"
    # json reads NaN/Infinity literals; the published protocol (score >= 0) does not define them.
    if not all(map(math.isfinite, [entry["score"], *entry["bbox"]])):
        return f"non-finite score or bbox: score {entry['score']!r}, bbox {entry['bbox']!r}"
    if not (entry["bbox"][2] > 0 and entry["bbox"][3] > 0):   # zero area crashes the crop; negative mirrors it
        return f"bbox {entry['bbox']!r} has width or height <= 0 (expected [x, y, w, h] with w, h > 0)"
    return ""
