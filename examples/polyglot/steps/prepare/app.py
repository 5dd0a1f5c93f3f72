"""prepare (Python): reads the wine data, drops unusable rows, and writes a
seeded, stratified train/test split in the dataset format the Rust `train`
step reads: {"features", "classes", "rows", "labels"}."""

import math
import random

import weft_step as weft

FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium",
    "total_phenols", "flavanoids", "nonflavanoid_phenols", "proanthocyanins",
    "color_intensity", "hue", "od280_od315", "proline",
]


@weft.step
def prepare(params):
    fraction = float(params.get("test_fraction", 0.3))
    if not 0.0 < fraction < 1.0:
        raise weft.InvalidParams(f"test_fraction must be between 0 and 1, got {fraction}")
    seed = int(params.get("seed", 0))

    lines = weft.read_input_text("raw").splitlines()
    header = lines[0].split(",")
    declared, width, classes = int(header[0]), int(header[1]), header[2:]
    if width != len(FEATURES):
        raise ValueError(f"expected {len(FEATURES)} features, the header says {width}")

    rows, labels, dropped = [], [], 0
    for line in lines[1:]:
        cells = line.split(",")
        try:
            values = [float(c) for c in cells[:width]]
            label = int(cells[width])
        except (ValueError, IndexError):
            dropped += 1
            continue
        if len(cells) != width + 1 or not all(math.isfinite(v) for v in values) or not 0 <= label < len(classes):
            dropped += 1
            continue
        rows.append(values)
        labels.append(label)
    print(f"{len(rows)} usable rows of {declared} declared, {dropped} dropped")

    # Stratified: the same fraction of each class goes to the test set.
    rng = random.Random(seed)
    train, test = [], []
    for c in range(len(classes)):
        members = [i for i, y in enumerate(labels) if y == c]
        rng.shuffle(members)
        cut = round(len(members) * fraction)
        test += members[:cut]
        train += members[cut:]
    rng.shuffle(train)
    rng.shuffle(test)

    def dataset(indices):
        return {
            "features": FEATURES,
            "classes": classes,
            "rows": [rows[i] for i in indices],
            "labels": [labels[i] for i in indices],
        }

    weft.write_json("train", dataset(train))
    weft.write_json("test", dataset(test))
    weft.log_metric("rows_train", len(train))
    weft.log_metric("rows_test", len(test))
    weft.log_metric("rows_dropped", dropped)
