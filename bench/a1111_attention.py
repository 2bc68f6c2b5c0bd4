"""Python side of bench/caption.mjs: AUTOMATIC1111's `parse_prompt_attention`
(modules/prompt_parser.py), re-implemented for the benchmark from the survey in
refs/caption-syntax.md section 1: the same regular expressions, the same multiplication order,
brackets still open at the end applied round first, then square, equal neighbours merged, and
`["BREAK", -1]` with an int -1."""
import json
import re
import time

from worker import serve

RE_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
ROUND = 1.1
SQUARE = 1 / 1.1


def parse_prompt_attention(prompt):
    res = []
    round_open, square_open = [], []

    def scale_from(start, factor):
        for entry in res[start:]:
            entry[1] *= factor

    for match in RE_ATTENTION.finditer(prompt):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_open.append(len(res))
        elif piece == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), float(weight))  # ValueError on "1.2.3", as upstream
        elif piece == ")" and round_open:
            scale_from(round_open.pop(), ROUND)
        elif piece == "]" and square_open:
            scale_from(square_open.pop(), SQUARE)
        else:
            for i, part in enumerate(RE_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])

    for start in round_open:
        scale_from(start, ROUND)
    for start in square_open:
        scale_from(start, SQUARE)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


captions = []


def load(request):
    with open(request["path"], encoding="utf-8") as f:
        captions[:] = f.read().split("\n")
    return {"captions": len(captions)}


def parse_or_none(caption):
    try:
        return parse_prompt_attention(caption)
    except ValueError:
        return None


def run(_request):
    # Each result is used (its length counted) and dropped, as a data loader would use it.
    started = time.perf_counter()
    pieces = 0
    for caption in captions:
        result = parse_or_none(caption)
        pieces += len(result) if result else 0
    return {"seconds": time.perf_counter() - started, "pieces": pieces}


def dump(request):
    with open(request["out"], "w", encoding="utf-8") as f:
        json.dump([parse_or_none(caption) for caption in captions], f, ensure_ascii=False)
    return {}


serve({"load": load, "run": run, "dump": dump})
