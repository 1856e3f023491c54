#!/usr/bin/env python3
"""Checks the feedback dataset in this directory.

Run with plain python3 (python-stdnum is used when installed, for a second opinion on NIR and IBAN):

    python3 datasets/feedback/check.py           # checks everything, prints the counts, exits 1 on any error
    python3 datasets/feedback/check.py --table   # prints only the Markdown counts table pasted in README.md

Checks: fields and vocabularies of messages.jsonl, the labelling rules of README.md that can be checked
mechanically, the distribution targets, the planted personal data (exact substrings, NIR and IBAN checksums,
phone and e-mail shapes, nothing identifier-like left unlisted), taxonomy_examples.jsonl (vocabularies,
10 per label, no overlap with the messages), and export-experiences-sample.csv (parsed with
csv.reader(delimiter=';'): header, value sets, quoting of ';' and newlines).
"""
import collections
import csv
import datetime
import difflib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGES = os.path.join(HERE, "messages.jsonl")
TAXONOMY = os.path.join(HERE, "..", "..", "socle", "apps", "feedback", "taxonomy_examples.jsonl")  # the app's anchors
CSV_SAMPLE = os.path.join(HERE, "export-experiences-sample.csv")
README = os.path.join(HERE, "README.md")

FIELDS = ["id", "date", "service", "channel", "rating", "text", "themes", "subthemes", "sentiment", "urgent", "pii"]
SERVICES = ["CAF", "France Travail", "Assurance Maladie (CPAM)", "ANTS", "DGFiP (impots.gouv)", "Préfecture",
            "URSSAF", "Mairie", "Assurance retraite (CNAV/CARSAT)", "MSA", "France Services"]
CHANNELS = ["Services Publics+", "Fin de démarche en ligne", "Courriel"]
THEMES = ["Accessibilité", "Information/Explication", "Relation", "Réactivité", "Simplicité/Complexité"]
SUBTHEMES = ["delais_traitement", "temps_attente", "site_demarche_en_ligne", "pieces_justificatives", "cout",
             "joignabilite", "accueil_comportement", "clarte_information", "accessibilite_handicap_numerique",
             "erreur_dossier"]
SENTIMENTS = ["negative", "neutral", "positive"]
PII_TYPES = ["name", "email", "phone", "nir", "iban", "address", "identifier"]
# A subtheme always comes with the engagement it belongs to (README, "Themes and subthemes").
# cout and erreur_dossier carry no theme of their own.
IMPLIED_THEME = {
    "delais_traitement": "Réactivité", "temps_attente": "Réactivité",
    "site_demarche_en_ligne": "Simplicité/Complexité", "pieces_justificatives": "Simplicité/Complexité",
    "joignabilite": "Accessibilité", "accessibilite_handicap_numerique": "Accessibilité",
    "accueil_comportement": "Relation", "clarte_information": "Information/Explication",
}
RATING_BY_SENTIMENT = {"negative": {1, 2}, "neutral": {3}, "positive": {4, 5}}
FIRST_DAY, LAST_DAY = datetime.date(2025, 1, 1), datetime.date(2026, 10, 31)

CSV_HEADER = ["ID expérience", "Écrit le", "Titre", "Description", "Ressenti usager", "Pays",
              "Intitulé typologie 1", "Intitulé typologie 2", "Intitulé typologie 3",
              "Intitulé structure 1", "Intitulé structure 2", "Intitulé structure 3",
              "Réponse structure 1", "Réponse structure 2", "Réponse structure 3",
              "Accessibilité", "Information/Explication", "Relation", "Réactivité", "Simplicité/Complexité", "Statut"]

ERRORS = []


def error(msg):
    ERRORS.append(msg)


# ------------------------------------------------------------------ identifiers
def nir_ok(value):
    digits = re.sub(r"\s", "", value)
    if not re.fullmatch(r"[12]\d{14}", digits):
        return False
    if not 1 <= int(digits[3:5]) <= 12:
        return False
    return 97 - int(digits[:13]) % 97 == int(digits[13:])


def iban_ok(value):
    s = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"FR\d{2}\d{10}[0-9A-Z]{11}\d{2}", s):
        return False
    moved = s[4:] + s[:4]
    if int("".join(str(int(c, 36)) for c in moved)) % 97 != 1:
        return False
    # French RIB key: 97 - (89 * bank + 15 * branch + 3 * account) mod 97, letters mapped as in the RIB.
    table = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "12345678912345678923456789")
    bank, branch, account, key = s[4:9], s[9:14], s[14:25].translate(table), s[25:27]
    return 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97 == int(key)


def stdnum_opinion():
    try:
        from stdnum import iban as std_iban
        from stdnum.fr import nir as std_nir
    except ImportError:
        return None
    return std_nir, std_iban


PHONE_RE = re.compile(r"(?<![\d+])(?:\+33\s?[1-9](?:[\s.\-]?\d{2}){4}|0[1-9](?:[\s.\-]?\d{2}){4})(?!\d)")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
IBAN_RE = re.compile(r"\bFR\d{2}(?:\s?[0-9A-Z]{4}){5}\s?[0-9A-Z]{3}\b")
NIR_RE = re.compile(r"(?<!\d)[12](?:\s?\d{2}){3}(?:\s?\d{3}){2}\s?\d{2}(?!\d)")
LONG_NUMBER_RE = re.compile(r"(?<![\d,.])\d{7,}(?![\d,])|\b\d{7}[A-Z]\b|\b\d{2}-[A-Z]{3}-\d{7}\b")
TITLES = ("M. ", "Mme ", "Mlle ", "Madame ", "Monsieur ", "Dr ")


def check_pii_value(mid, p, text):
    t, v = p.get("type"), p.get("value")
    if t not in PII_TYPES:
        error(f"{mid}: unknown pii type {t!r}")
        return
    if not isinstance(v, str) or not v or v not in text:
        error(f"{mid}: pii value {v!r} is not an exact substring of the text")
        return
    if v != v.strip():
        error(f"{mid}: pii value {v!r} has surrounding spaces")
    if t == "nir" and not nir_ok(v):
        error(f"{mid}: NIR {v!r} fails its key")
    if t == "iban" and not iban_ok(v):
        error(f"{mid}: IBAN {v!r} fails its checksum or RIB key")
    if t == "phone" and not PHONE_RE.fullmatch(v):
        error(f"{mid}: phone {v!r} is not a French number")
    if t == "email" and not EMAIL_RE.fullmatch(v):
        error(f"{mid}: e-mail {v!r} malformed")
    if t == "name" and (re.search(r"\d", v) or v.startswith(TITLES)):
        error(f"{mid}: name {v!r} holds digits or a civility title")
    if t == "address" and not re.search(r"\b\d{5}\b", v):
        error(f"{mid}: address {v!r} has no postcode")


def unlisted_identifiers(text, values):
    """Identifier-like strings in the text that no pii value covers."""
    found = []
    for rx in (PHONE_RE, EMAIL_RE, IBAN_RE, NIR_RE, LONG_NUMBER_RE):
        for m in rx.finditer(text):
            if not any(m.group(0) in v for v in values):
                found.append(m.group(0))
    return found


# ------------------------------------------------------------------ messages
def load_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                error(f"{os.path.basename(path)}:{n}: empty line")
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                error(f"{os.path.basename(path)}:{n}: {exc}")
    return rows


def check_messages(rows):
    seen_ids = set()
    for n, r in enumerate(rows, 1):
        mid = r.get("id", f"line {n}")
        if list(r) != FIELDS:
            error(f"{mid}: fields {list(r)} != {FIELDS}")
            continue
        if r["id"] != f"FB-{n:04d}" or r["id"] in seen_ids:
            error(f"{mid}: id out of sequence or duplicated")
        seen_ids.add(r["id"])
        try:
            d = datetime.date.fromisoformat(r["date"])
            if not FIRST_DAY <= d <= LAST_DAY:
                error(f"{mid}: date {d} outside 2025-01..2026-10")
        except (TypeError, ValueError):
            error(f"{mid}: bad date {r['date']!r}")
        if r["service"] not in SERVICES:
            error(f"{mid}: unknown service {r['service']!r}")
        if r["channel"] not in CHANNELS:
            error(f"{mid}: unknown channel {r['channel']!r}")
        rating = r["rating"]
        if rating is not None and (type(rating) is not int or not 1 <= rating <= 5):
            error(f"{mid}: rating {rating!r} not an integer 1-5 or null")
        if (rating is not None) != (r["channel"] == "Fin de démarche en ligne"):
            error(f"{mid}: a rating is given exactly for the 'Fin de démarche en ligne' channel")
        if not isinstance(r["text"], str) or not r["text"].strip():
            error(f"{mid}: empty text")
        if r["sentiment"] not in SENTIMENTS:
            error(f"{mid}: unknown sentiment {r['sentiment']!r}")
        elif rating is not None and rating not in RATING_BY_SENTIMENT[r["sentiment"]]:
            error(f"{mid}: rating {rating} does not fit sentiment {r['sentiment']}")
        if type(r["urgent"]) is not bool:
            error(f"{mid}: urgent must be a boolean")
        for key, vocab in (("themes", THEMES), ("subthemes", SUBTHEMES)):
            vals = r[key]
            if not isinstance(vals, list) or len(set(vals)) != len(vals) or any(v not in vocab for v in vals):
                error(f"{mid}: {key} {vals!r} not a list of distinct labels from the vocabulary")
        for s in r["subthemes"]:
            if s in IMPLIED_THEME and IMPLIED_THEME[s] not in r["themes"]:
                error(f"{mid}: subtheme {s} without its theme {IMPLIED_THEME[s]}")
        if r["subthemes"] and not r["themes"]:
            error(f"{mid}: subthemes without any theme")
        if not isinstance(r["pii"], list):
            error(f"{mid}: pii must be a list")
            continue
        pairs = [(p.get("type"), p.get("value")) for p in r["pii"]]
        if len(set(pairs)) != len(pairs):
            error(f"{mid}: duplicated pii entry")
        for p in r["pii"]:
            if list(p) != ["type", "value"]:
                error(f"{mid}: pii entry {p!r} must have exactly type and value")
                continue
            check_pii_value(mid, p, r["text"])
        leaks = unlisted_identifiers(r["text"], [p.get("value", "") for p in r["pii"]])
        if leaks:
            error(f"{mid}: identifier-like strings not listed in pii: {leaks}")


def counts_table(rows):
    n = len(rows)
    c = collections.Counter()
    for r in rows:
        c["sentiment", r["sentiment"]] += 1
        c["urgent", str(r["urgent"]).lower()] += 1
        c["channel", r["channel"]] += 1
        c["service", r["service"]] += 1
        c["rating", "null" if r["rating"] is None else str(r["rating"])] += 1
        for t in r["themes"]:
            c["theme", t] += 1
        for s in r["subthemes"]:
            c["subtheme", s] += 1
        if not r["themes"]:
            c["theme", "(none)"] += 1
        if not r["subthemes"]:
            c["subtheme", "(none)"] += 1
        for t in sorted({p["type"] for p in r["pii"]}):
            c["pii (messages)", t] += 1
        for p in r["pii"]:
            c["pii (values)", p["type"]] += 1
        if r["pii"]:
            c["pii (messages)", "any"] += 1
        c["themes per message", str(len(r["themes"]))] += 1
        c["subthemes per message", str(len(r["subthemes"]))] += 1
        c["year-quarter", f"{r['date'][:4]}-Q{(int(r['date'][5:7]) - 1) // 3 + 1}"] += 1
    order = [("sentiment", SENTIMENTS), ("urgent", ["true", "false"]), ("theme", THEMES + ["(none)"]),
             ("subtheme", SUBTHEMES + ["(none)"]), ("channel", CHANNELS), ("service", SERVICES),
             ("rating", ["1", "2", "3", "4", "5", "null"]),
             ("themes per message", [str(i) for i in range(6)]),
             ("subthemes per message", [str(i) for i in range(11)]),
             ("pii (messages)", ["any"] + PII_TYPES), ("pii (values)", PII_TYPES),
             ("year-quarter", [f"{y}-Q{q}" for y in (2025, 2026) for q in (1, 2, 3, 4) if (y, q) <= (2026, 4)])]
    lines = [f"| label type | label | messages | share of {n} |", "|---|---|---:|---:|"]
    for kind, labels in order:
        for lab in labels:
            k = c[kind, lab]
            if k == 0 and kind in ("themes per message", "subthemes per message"):
                continue
            share = f"{100 * k / n:.1f} %" if kind != "pii (values)" else "—"
            lines.append(f"| {kind} | {lab} | {k} | {share} |")
    return "\n".join(lines), c


def check_distribution(rows, c):
    n = len(rows)
    if n < 240:
        error(f"only {n} messages (at least 240)")
    for s, lo, hi in (("negative", 0.50, 0.70), ("neutral", 0.12, 0.28), ("positive", 0.12, 0.28)):
        if not lo <= c["sentiment", s] / n <= hi:
            error(f"sentiment {s}: {c['sentiment', s]}/{n} outside {lo:.0%}-{hi:.0%}")
    if not 0.12 <= c["urgent", "true"] / n <= 0.18:
        error(f"urgent: {c['urgent', 'true']}/{n} outside 12-18 %")
    for t in THEMES:
        if c["theme", t] < 12:
            error(f"theme {t}: {c['theme', t]} messages (at least 12)")
    for s in SUBTHEMES:
        if c["subtheme", s] < 12:
            error(f"subtheme {s}: {c['subtheme', s]} messages (at least 12)")
    if c["pii (messages)", "any"] < 40:
        error(f"only {c['pii (messages)', 'any']} messages with personal data (at least 40)")
    for t in PII_TYPES:
        if c["pii (values)", t] == 0:
            error(f"no planted {t}")
    if sum(1 for r in rows if len(r["themes"]) + len(r["subthemes"]) > 2) < n // 4:
        error("too few multi-label messages")
    if sum(1 for r in rows if not r["pii"] and re.search(r"\b(Madame|Monsieur)\b", r["text"])) == 0:
        error("no message without personal data uses 'Madame'/'Monsieur'")


def check_stdnum(rows):
    std = stdnum_opinion()
    if std is None:
        return "python-stdnum not installed: checksums verified by this script only"
    std_nir, std_iban = std
    for r in rows:
        for p in r["pii"]:
            if p["type"] == "nir" and not std_nir.is_valid(p["value"]):
                error(f"{r['id']}: stdnum rejects NIR {p['value']!r}")
            if p["type"] == "iban" and not std_iban.is_valid(p["value"]):
                error(f"{r['id']}: stdnum rejects IBAN {p['value']!r}")
    return "python-stdnum agrees on every NIR and IBAN"


# ------------------------------------------------------------------ taxonomy anchors
def sentences(text):
    return [s.strip() for s in re.split(r"(?<=[.!?…])\s+|\n+", text) if s.strip()]


def check_taxonomy(anchors, rows):
    vocab = {"theme": THEMES, "subtheme": SUBTHEMES, "sentiment": SENTIMENTS, "urgent": [True, False]}
    per_label = collections.Counter()
    for a in anchors:
        if list(a) != ["label_type", "label", "text"]:
            error(f"taxonomy: bad fields {list(a)}")
            continue
        if a["label_type"] not in vocab or a["label"] not in vocab[a["label_type"]] or \
                (a["label_type"] == "urgent" and type(a["label"]) is not bool):
            error(f"taxonomy: unknown label {a['label_type']}/{a['label']!r}")
        per_label[a["label_type"], a["label"]] += 1
    for lt, labels in vocab.items():
        for lab in labels:
            if per_label[lt, lab] != 30:
                error(f"taxonomy: {lt}/{lab} has {per_label[lt, lab]} examples (30 expected)")
    texts = [a["text"] for a in anchors]
    if len(set(texts)) != len(texts):
        error("taxonomy: duplicated example texts")
    message_sentences = [s.lower() for r in rows for s in sentences(r["text"])]
    full = "\n".join(r["text"].lower() for r in rows)
    for t in texts:
        tl = t.lower()
        if tl in full:
            error(f"taxonomy: example copied from a message: {t!r}")
            continue
        matcher = difflib.SequenceMatcher(None, tl, "", autojunk=False)
        for s in message_sentences:
            matcher.set_seq2(s)
            if matcher.real_quick_ratio() > 0.75 and matcher.quick_ratio() > 0.75 and matcher.ratio() > 0.75:
                error(f"taxonomy: example {t!r} is too close to message sentence {s!r}")
                break


# ------------------------------------------------------------------ CSV sample
def check_csv(rows):
    with open(CSV_SAMPLE, encoding="utf-8", newline="") as f:
        raw = f.read()
    if raw.startswith("\ufeff"):
        error("CSV: starts with a byte order mark")
    records = list(csv.reader(raw.splitlines(keepends=True), delimiter=";"))
    if not records or records[0] != CSV_HEADER:
        error(f"CSV: header differs: {records[0] if records else None}")
        return 0
    body = records[1:]
    if not 30 <= len(body) <= 40:
        error(f"CSV: {len(body)} rows (30-40 expected)")
    ids = set()
    message_texts = "\n".join(r["text"] for r in rows)
    idx = {h: i for i, h in enumerate(CSV_HEADER)}
    for rec in body:
        if len(rec) != len(CSV_HEADER):
            error(f"CSV: row {rec[:1]} has {len(rec)} columns")
            continue
        get = lambda h: rec[idx[h]]
        if not get("ID expérience").isdigit() or get("ID expérience") in ids:
            error(f"CSV: bad or duplicated ID {get('ID expérience')!r}")
        ids.add(get("ID expérience"))
        try:
            datetime.date.fromisoformat(get("Écrit le"))
        except ValueError:
            error(f"CSV: bad date {get('Écrit le')!r}")
        if get("Ressenti usager") not in ("Positif", "Négatif", "Neutre"):
            error(f"CSV: bad Ressenti usager {get('Ressenti usager')!r}")
        for h in THEMES:
            if get(h) not in ("Positif", "Négatif", ""):
                error(f"CSV: bad {h} value {get(h)!r}")
        has_reply = any(get(f"Réponse structure {i}") for i in (1, 2, 3))
        if get("Statut") != ("Avec réponse" if has_reply else "Sans réponse"):
            error(f"CSV: Statut {get('Statut')!r} does not match the replies of {get('ID expérience')}")
        if not get("Intitulé structure 1") or not get("Intitulé typologie 1") or not get("Description"):
            error(f"CSV: row {get('ID expérience')} lacks a structure, typology or description")
        if get("Description") in message_texts:
            error(f"CSV: description of {get('ID expérience')} copied from messages.jsonl")
        for cell in rec[1:]:
            leaks = unlisted_identifiers(cell, [])
            if leaks or EMAIL_RE.search(cell):
                error(f"CSV: identifier-like string in row {get('ID expérience')}: {leaks}")
    descs = [rec[idx["Description"]] for rec in body if len(rec) == len(CSV_HEADER)]
    if not any(";" in d for d in descs) or not any("\n" in d for d in descs):
        error("CSV: no description holds a ';', or none holds a newline (quoting untested)")
    return len(body)


# ------------------------------------------------------------------ main
def main():
    rows = load_jsonl(MESSAGES)
    table, c = counts_table(rows) if rows and all(list(r) == FIELDS for r in rows) else ("", collections.Counter())
    if "--table" in sys.argv:
        print(table)
        return 0
    check_messages(rows)
    if table:
        check_distribution(rows, c)
    stdnum_note = check_stdnum(rows)
    anchors = load_jsonl(TAXONOMY)
    check_taxonomy(anchors, rows)
    n_csv = check_csv(rows)
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    if table and table not in readme:
        error("README.md does not hold the current counts table (python3 check.py --table)")
    for label in THEMES + SUBTHEMES + SENTIMENTS:
        if f"`{label}`" not in readme:
            error(f"README.md does not describe `{label}`")

    print(f"messages.jsonl: {len(rows)} messages; taxonomy_examples.jsonl: {len(anchors)} anchors; "
          f"export-experiences-sample.csv: {n_csv} rows")
    print(stdnum_note)
    print(table)
    if ERRORS:
        print(f"\n{len(ERRORS)} error(s):")
        for e in ERRORS:
            print(" -", e)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
