"""Personal data in citizens' feedback: find it, and replace it with readable placeholders.

Messages left on "je donne mon avis" carry names, phone numbers, social-security numbers... that must not
reach a model prompt or a report. Numbers with a numbering plan or a checksum are found by maintained
libraries (`phonenumbers`, `python-stdnum`): their validation keeps amounts, dates and years out. No French
NER model is available offline, so names come from context cues (civilities, "je m'appelle", "mon fils",
signatures) and from a gazetteer of French-speaking first names (the `faker` package's lists); titles,
services and cities are stop words, so "Monsieur le Maire", "la CAF" or "France Travail" stay as they are.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import import_module

import phonenumbers
from stdnum import iban as _iban
from stdnum.fr import nir as _nir

from socle.text import fold

KINDS = ("email", "iban", "nir", "identifier", "phone", "address", "name")  # overlaps: the first kind wins
LABELS = {"name": "NOM", "email": "EMAIL", "phone": "TELEPHONE", "nir": "NIR", "iban": "IBAN",
          "address": "ADRESSE", "identifier": "IDENTIFIANT"}
PLACEHOLDER = re.compile(rf"\[(?:{'|'.join(LABELS.values())})_\d+\]")  # what replaces each value: [NOM_1]


def without_placeholders(text: str) -> str:
    """A pseudonymised text with its placeholders blanked: that it named someone says nothing of its subject."""
    return PLACEHOLDER.sub(" ", text)


@dataclass(frozen=True, slots=True)
class Span:
    """One identifier found in a text: ``text[start:end] == span.text``."""
    kind: str  # "name" | "email" | "phone" | "nir" | "iban" | "address" | "identifier"
    start: int
    end: int
    text: str


def detect(text: str) -> list[Span]:
    """Every identifier in the text, non-overlapping, sorted by start."""
    found = [*_emails(text), *_ibans(text), *_nirs(text), *_identifiers(text), *_phones(text),
             *_addresses(text), *_names(text)]
    kept = _resolve(text, found)
    kept += _repeated_names(text, kept)
    return sorted(kept, key=lambda s: s.start)


def pseudonymise(text: str, spans: list[Span] | None = None) -> str:
    """The text with each identifier replaced by a placeholder: ``[NOM_1]``, ``[TELEPHONE_2]``...

    One value gets one placeholder throughout the text ("06 12 34 56 78" and "0612345678" alike; "Dubois"
    after "Marie Dubois" too), so a reader still follows who did what. A civility stays: "Mme [NOM_1]".
    """
    spans = detect(text) if spans is None else sorted(spans, key=lambda s: s.start)
    counts: Counter[str] = Counter()
    known: dict[tuple[str, str], str] = {}
    people: list[tuple[frozenset[str], str]] = []
    parts, pos = [], 0
    for span in spans:
        if span.start < pos:
            continue  # overlapping spans given by a caller: the first one stands
        if span.kind == "name":
            placeholder = _person(span.text, people, counts)
        else:
            key = (span.kind, _normal(span))
            if key not in known:
                counts[span.kind] += 1
                known[key] = f"[{LABELS[span.kind]}_{counts[span.kind]}]"
            placeholder = known[key]
        parts += [text[pos:span.start], placeholder]
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


# --- placeholders -------------------------------------------------------------------------------------

def _normal(span: Span) -> str:
    """A value's canonical form, so that two spellings of one number share a placeholder."""
    if span.kind == "phone":
        try:
            number = phonenumbers.parse(span.text, "FR")
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            pass
    if span.kind == "email":
        return span.text.casefold()
    if span.kind == "address":
        return " ".join(re.findall(r"\w+", fold(span.text)))
    return re.sub(r"[^0-9A-Z]", "", span.text.upper())


def _person(name: str, people: list[tuple[frozenset[str], str]], counts: Counter[str]) -> str:
    """One placeholder per person: a name whose words are all within an earlier one's is the same person."""
    words = frozenset(w for w in re.findall(r"\w+", fold(name)) if w not in _PARTICLES)
    for other, placeholder in people:
        if words <= other or other <= words:
            return placeholder
    counts["name"] += 1
    placeholder = f"[{LABELS['name']}_{counts['name']}]"
    people.append((words, placeholder))
    return placeholder


def _resolve(text: str, found: list[Span]) -> list[Span]:
    """Non-overlapping spans: overlapping names merge; otherwise the surer kind wins, then the longer."""
    merged: list[Span] = []
    for span in sorted((s for s in found if s.kind == "name"), key=lambda s: s.start):
        if merged and span.start < merged[-1].end:
            start, end = merged[-1].start, max(merged.pop().end, span.end)
            span = Span("name", start, end, text[start:end])
        merged.append(span)
    ordered = sorted([s for s in found if s.kind != "name"] + merged,
                     key=lambda s: (KINDS.index(s.kind), s.start - s.end, s.start))
    taken = bytearray(len(text))
    return [span for span in ordered if _take(taken, span)]


def _take(taken: bytearray, span: Span) -> bool:
    """Marks the span's characters as taken, unless one of them already is."""
    if taken.find(1, span.start, span.end) != -1:
        return False
    taken[span.start:span.end] = b"\x01" * (span.end - span.start)
    return True


# --- numbers and addresses ----------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+(?:[ \t]?@[ \t]?|[ \t]?[\[(]at[\])][ \t]?)[\w-]+(?:\.[\w-]+)*"
                    r"\.[A-Za-z]{2,}(?!\w)")


def _emails(text: str) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        yield Span("email", m.start(), m.end(), m.group())


_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}")


def _ibans(text: str) -> Iterator[Span]:
    """Country code, key, then groups: the longest prefix of the run that has a valid checksum."""
    for m in _IBAN.finditer(text):
        run = m.group()
        for end in range(len(run), 14, -1):  # cut at the end of a group: "FR76 ... 189 merci"
            if (end == len(run) or run[end] in " -") and _iban.is_valid(run[:end]):
                yield Span("iban", m.start(), m.start() + end, run[:end])
                break


_NIR = re.compile(r"(?<![\w])[1-478][ .]?\d{2}[ .]?\d{2}[ .]?(?:\d{2}|2[ABab])[ .]?\d{3}[ .]?\d{3}"
                  r"(?:[ .]?(\d{2}))?(?![\w])")
_NIR_CUE = re.compile(r"(?i:s[ée]cu\b|s[ée]curit[ée]\s+sociale|\bNIR\b|\bINSEE\b|carte\s+vitale|ameli)")


def _nirs(text: str) -> Iterator[Span]:
    """A NIR with a valid key; with "sécu", "NIR"... just before it, one without its key (or a wrong one)."""
    for m in _NIR.finditer(text):
        if _nir.is_valid(m.group()) or _NIR_CUE.search(text, max(0, m.start() - 60), m.start()):
            yield Span("nir", m.start(), m.end(), m.group())


# ten digits from 0[1-9], or +33 and nine: the shape of a French number, even in a range no operator was given
# (06 39 98 …, kept for fiction), which phonenumbers rightly calls invalid
_FRENCH_PHONE = re.compile(r"(?:(?:\+|00)33|\(\+33\))[ .-]?(?:\(0\)[ .-]?)?[1-9](?:[ .-]?\d{2}){4}"
                           r"|0[1-9](?:[ .-]?\d{2}){4}")


def _phones(text: str) -> Iterator[Span]:
    """French numbers in every usual spelling, and foreign ones written with their country code."""
    for m in phonenumbers.PhoneNumberMatcher(text, "FR", leniency=phonenumbers.Leniency.POSSIBLE):
        if phonenumbers.is_valid_number(m.number) or _FRENCH_PHONE.fullmatch(m.raw_string):
            yield Span("phone", m.start, m.end, m.raw_string)


_ID_CUE = re.compile(r"""(?ix)
    (?<!\w)(?:
        (?:num[ée]ro|n[°º]|no\.|num\.?|r[ée]f[ée]rence|r[ée]f\.?)\s*(?:d['’]\s*|de\s+(?:la\s+|l['’])?|du\s+)?
        (?:allocataire|fiscal|dossier|s[ée]curit[ée]\s+sociale|s[ée]cu|france\s+travail|p[ôo]le\s+emploi|
           demandeur\s+d['’]emploi|identifiant|inscription|client|contrat|adh[ée]rent|matricule|passeport|
           carte\s+d['’]identit[ée]|cni|permis(?:\s+de\s+conduire)?|titre\s+de\s+s[ée]jour|[ée]tranger|agdref|
           t[ée]l[ée]d[ée]clarant|demande|r[ée]clamation|avis\s+d['’]imposition|caf|cpam|msa|ameli|spi|ss|
           insee|assur[ée]\s+social)
      | identifiant | matricule
      | (?:allocataire|dossier|client|adh[ée]rent|assur[ée]|contribuable)\s*(?:n[°º]|num[ée]ro|no\.)
    )(?!\w)""")
_BARE_ID_CUE = re.compile(r"(?i:\bdossier)[ \t]*:?[ \t]*(?=\w*\d)")  # "dossier 2025-0012345", code at once
_CODE_LEAD = re.compile(r"""(?ix)(?:[ \t]*(?:[:=#]|\(|\)|est|c['’]est|le|l['’]|n[°º]|de|du|la|caf|cpam|msa|
    ameli|france\s+travail|p[ôo]le\s+emploi|france\s*connect|fiscal|de\s+r[ée]f[ée]rence|personnel|unique|suivant|
    de\s+connexion|num[ée]rique)(?=[\s:(]|(?<=['’])))*[ \t]*""")
# "1234567", "2024-AB-12345", "30 12 345 678 901", "1234567 A"
_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|[-/._](?=[A-Za-z0-9]))*(?:[ ]\d+(?:[-/.]\d+)*(?!\w))*"
                   r"(?:[ ][A-Z](?![\w'’]))?(?!\w)")
_AMOUNT_AFTER = re.compile(r"[ \t]*(?:€|(?i:euros?|eur|ans|jours|mois|km|kg)(?!\w))")


def _identifiers(text: str) -> Iterator[Span]:
    """A code of 5+ characters with a digit, right after "numéro allocataire", "identifiant"..., not an
    amount ("dossier 150 000 €")."""
    starts = [_CODE_LEAD.match(text, cue.end()).end() for cue in _ID_CUE.finditer(text)]
    starts += [cue.end() for cue in _BARE_ID_CUE.finditer(text)]
    for start in starts:
        code = _CODE.match(text, start)
        if (code and sum(c.isalnum() for c in code.group()) >= 5 and any(c.isdigit() for c in code.group())
                and not _AMOUNT_AFTER.match(text, code.end())):
            yield Span("identifier", code.start(), code.end(), code.group())


_UP = "A-ZÀ-ÖØ-ÞŒ"
_LOW = "a-zß-öø-ÿœ"
_SPACES = re.compile(r"[ \t]*")
_STREET = (r"rue|avenue|av\.?|boulevard|bd\.?|blvd\.?|bld\.?|place|pl\.|chemin|ch\.|impasse|imp\.|"
           r"all[ée]e|route|rte\.?|quai|cours|square|sq\.|r[ée]sidence|lieu[- ]dit|hameau|passage|sentier|"
           r"voie|cit[ée]|villa|parvis|promenade|esplanade|rond[- ]point|faubourg|fbg\.?|mont[ée]e|"
           r"chauss[ée]e|clos|lotissement|domaine|ruelle|traverse|venelle|mail")
# street types that are ordinary words too ("3 cours de maths"): a capitalised name must follow them
_AMBIGUOUS_STREETS = frozenset("place cours route passage voie cite villa clos domaine mail square promenade "
                               "traverse residence".split())
_NUMBERED_STREET = re.compile(rf"(?<![\w,.])(?:n[°º]\s*)?\d{{1,4}}(?:\s?(?:bis|ter|quater|[A-Da-d])(?!\w))?,?"
                              rf"\s+(?i:({_STREET}))(?!\w)\.?[ \t]+")
_BARE_STREET = re.compile(rf"(?<![\w])(?i:({_STREET}))(?!\w)\.?[ \t]+")
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*")
_ELISION = re.compile(r"^\w['’]")
_STREET_PARTICLES = frozenset("de du des la le les l d au aux sur sous en lez".split())
# words that end a street name typed without capitals ("12 rue de la paix depuis 2019")
_BREAKS = frozenset("""
je j nous vous il elle ils elles on depuis pour avec dans mais et ou qui que qu car donc puis chez par
pendant est sont a ai as ont avait etait suis sommes ne n pas plus ce cette ces mon ma mes son sa ses notre
votre leur merci bonjour cordialement quand lorsque alors ainsi sans tout tous rien toujours jamais deja
encore voici voila
""".split())
_COMPLEMENT = re.compile(r"[ \t]*,?[ \t]*(?i:appartement|appart|appt|apt|app|b[âa]timent|b[âa]t|[ée]tage|"
                         r"escalier|esc|porte|logement|lot|bo[îi]te|bp|cs)\.?[ \t]*(?:n[°º][ \t]*)?"
                         r"(?=[\w-]*\d|[A-Z](?!\w))[\w-]+")
_POSTCODE = re.compile(r"[ \t]*,?[ \t]*\n?[ \t]*(?:\d{5}|\d{2} \d{3})[ \t]+")
_CONNECTOR = re.compile(r"(?i:sur|sous|en|l[èe]s|lez|le|la|les|de|du|des)[ \t]+")


def _street_name_end(text: str, pos: int, capital_needed: bool) -> int | None:
    """Where a street's name ends: words, particles and numbers ("du 8 Mai 1945"), up to a break."""
    end, capital, previous = None, False, ""
    for count in range(8):
        m = _TOKEN.match(text, _SPACES.match(text, pos).end() if count else pos)
        if not m or fold(m.group()) in _BREAKS:
            break
        word = fold(m.group())
        if word.isdigit():
            if len(word) > 4 or not (previous in ("du", "de") or (len(word) == 4 and end is not None)):
                break
            end = m.end()
        elif _ELISION.sub("", word) not in _STREET_PARTICLES:
            capital = capital or _ELISION.sub("", m.group())[:1].isupper()
            end = m.end()
        previous, pos = word, m.end()
    return None if end is None or (capital_needed and not capital) else end


def _city_end(text: str, pos: int) -> int | None:
    """Where "75012 Paris", "13100 Aix-en-Provence" or "85000 La Roche sur Yon Cedex" ends, if one is here."""
    code = _POSTCODE.match(text, pos)
    first = _TOKEN.match(text, code.end()) if code else None
    if first is None or first.group()[0].isdigit():
        return None
    end = first.end()
    for _ in range(3):
        at = _SPACES.match(text, end).end()
        connector = _CONNECTOR.match(text, at)
        word = _TOKEN.match(text, connector.end() if connector else at)
        if word is None or not word.group()[0].isupper() or fold(word.group()) in _STOP | _BREAKS:
            break
        end = word.end()
        if fold(word.group()) == "cedex" and (number := re.match(r"[ \t]+\d{1,2}(?!\d)", text[end:end + 4])):
            end += number.end()
    return end


def _addresses(text: str) -> Iterator[Span]:
    """A numbered street ("12 bis rue de la Paix"), with its postal code and city when they follow; a street
    without a number counts only when a postal code and a city follow it."""
    for pattern, numbered in ((_NUMBERED_STREET, True), (_BARE_STREET, False)):
        for m in pattern.finditer(text):
            street = fold(m.group(1)).rstrip(".").replace(" ", "-")
            end = _street_name_end(text, m.end(), street in _AMBIGUOUS_STREETS)
            if end is None:
                continue
            while complement := _COMPLEMENT.match(text, end):  # ", appartement 12", ", bât. B"
                end = complement.end()
            city = _city_end(text, end)
            if city is None and not numbered:
                continue
            end = city or end
            yield Span("address", m.start(), end, text[m.start():end])


# --- names ----------------------------------------------------------------------------------------------

_CAP = rf"(?:[{_UP}][{_LOW}]+|[{_UP}]{{2,}})"  # "Dubois", "DUBOIS"
_NAME_WORD = re.compile(rf"(?<![\w'’-])(?:[{_UP}d]['’])?{_CAP}(?:-(?:{_CAP}|[{_LOW}]+))*(?![\w@'’-])")
_INITIAL = re.compile(rf"[{_UP}]\.(?!\w)")
_PARTICLE = re.compile(r"(?:(?i:de|du|des|da|dos|das|di|del|van|von|der|den|le|la|ben|bin|el|al)[ \t]+)+")
_PARTICLES = frozenset("de du des d da dos das di del della van von der den ter le la ben bin el al".split())
_LEADING_PARTICLES = ("de ", "du ", "des ")  # "Monsieur de Villepin", never "Monsieur le Maire"

# capitalised words that are never a name here: function words and greetings, civilities, titles, services,
# large cities, months and days (folded)
_STOP = frozenset("""
je j tu il elle on nous vous ils elles le la les l un une des du de d et ou mais donc or ni car ce cet cette
ces ca cela ceci mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs qui que quoi dont si en y a
au aux par pour avec sans sous sur dans chez depuis pendant apres avant lors quand comme alors ainsi aussi
bien tres plus moins pas ne non oui tout tous toute toutes deja encore toujours jamais rien personne malgre
enfin puis ensuite voici voila car cependant pourtant neanmoins objet re tel mail email courriel adresse
date rdv svp ps nb merci bonjour bonsoir cordialement salutations respectueusement bravo hello salut bonne
bon belle beau excellente

madame monsieur mademoiselle messieurs mesdames m mme mlle mr mrs ms dr me docteur maitre pr professeur

maire adjoint adjointe prefet prefete directeur directrice president presidente ministre depute deputee
senateur senatrice juge procureur conseiller conseillere agent agente medecin chef cheffe responsable
secretaire gestionnaire commissaire inspecteur inspectrice capitaine lieutenant brigadier gendarme policier
policiere defenseur defenseure mediateur mediatrice delegue deleguee administrateur administratrice referent
referente assistant assistante infirmier infirmiere avocat avocate notaire huissier comptable controleur
receveur tresorier proviseur instituteur institutrice enseignant enseignante equipe service services
collaborateur

caf cpam msa urssaf ants ameli dgfip anah crous cnaf cnav carsat mdph apl rsa aah ars insee sncf ratp edf
engie cnil pmi ccas sip sie spi nir iban bic rib cerfa pdf sms web url ok fr france travail pole emploi
poste public publique publics publiques mairie prefecture sous-prefecture impots tresor securite sociale
assurance maladie retraite vitale connect franceconnect etat republique gouvernement administration
departement region conseil tribunal cour police gendarmerie hopital centre agence caisse direction ministere
espace maison point bureau guichet accueil site internet application portail plateforme numero dossier
demande formulaire allocation allocations prestation impot revenu taxe permis passeport carte titre sejour
identite naturalisation visa

paris lyon marseille toulouse nice nantes strasbourg montpellier bordeaux lille rennes reims toulon grenoble
dijon angers nimes villeurbanne clermont-ferrand aix-en-provence brest tours amiens limoges metz besancon
perpignan orleans rouen mulhouse caen nancy argenteuil montreuil roubaix tourcoing avignon poitiers pau
calais europe francais francaise

janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre lundi mardi mercredi
jeudi vendredi samedi dimanche noel paques toussaint dieu covid euro euros google facebook whatsapp android
iphone
""".split())

_CIVILITY = re.compile(r"(?<![\w.])(?:M\.|MM\.|Mr\.?|Mme\.?|Mlle\.?|Dr\.?|Me|Pr\.?"
                       r"|(?i:monsieur|madame|mademoiselle|docteur|ma[iî]tre|professeur))(?=[ \t])")
_INTRODUCTION = re.compile(r"(?i:\bje\s+m['’]\s*appelle|\bmon\s+nom\s+est|\bje\s+me\s+nomme|\bmoi\s+c['’]est)"
                           r"(?=[ \t])")
_I_AM = re.compile(r"(?i:\bje\s+suis)(?=[ \t])")
_RELATIVE = re.compile(r"""(?ix)
    (?:\b(?:mon|ma|notre|votre|son|sa)\s+
        (?:fils|fille|mari|femme|[ée]pou(?:x|se)|compagn(?:on|e)|conjointe?|m[èe]re|maman|p[èe]re|papa|
           s[œo]e?ur|fr[èe]re|grand-m[èe]re|grand-p[èe]re|petit-fils|petite-fille|enfant|neveu|ni[èe]ce|
           oncle|tante|cousine?|voisine?|belle-m[èe]re|beau-p[èe]re|belle-s[œo]e?ur|beau-fr[èe]re|ami|amie)
     | \bl['’](?:agente?|assistante?\s+social[e]?|employ[ée]e?|interlocut(?:eur|rice)|op[ée]rat(?:eur|rice))
     | \b(?:le|la)\s+(?:conseill(?:er|[èe]re)|gestionnaire|agente?|r[ée]f[ée]rente?|m[ée]decin|docteur|
                      assistante?\s+sociale?|secr[ée]taire|charg[ée]e?\s+de\s+client[èe]le|
                      charg[ée]e?\s+d['’]accueil)
    )[ \t]*,?(?=[ \t])""")
_SIGN_OFF = re.compile(r"""(?ix)
    (?:cordialement|bien\s+cordialement|bien\s+[àa]\s+vous|respectueusement|
       merci(?:\s+(?:beaucoup|d['’]avance|par\s+avance|encore|bien))?|
       (?:(?:sinc[èe]res|meilleures|respectueuses)\s+)?salutations(?:\s+distingu[ée]es)?|bonne\s+journ[ée]e)
    [ \t]*[,.!]*\s*""")
_LINE_END = re.compile(r"[ \t]*[.,!]?[ \t]*(?:\n|$)")
_INSTITUTION_BEFORE = re.compile(r"""(?ix)
    (?:\b(?:saint|sainte|st|ste|rue|avenue|av|boulevard|bd|place|all[ée]e|impasse|chemin|quai|square|cours|
           route|lyc[ée]e|coll[èe]ge|[ée]cole|scolaire|h[ôo]pital|clinique|centre|gymnase|stade|piscine|
           m[ée]diath[èe]que|biblioth[èe]que|universit[ée]|facult[ée]|institut|fondation|mus[ée]e|salle|espace|
           maison|r[ée]sidence|cit[ée]|pont|gare|a[ée]roport|parc|jardin|th[ée][âa]tre|station|m[ée]tro|
           cr[èe]che|ehpad|chu|foyer|association|prix|quartier|op[ée]ration|carte|pass|plan|loi|dispositif)
       \b\.?(?:[ \t]+[a-zà-ÿ'’-]+){0,2}|-)[ \t]*$""")  # "centre social Jean Jaurès", "Saint-Jean"


_LOWER_NAME = re.compile(rf"([{_LOW}]{{3,}}(?:-[{_LOW}]+)?)(?:[ \t]+([{_LOW}]{{2,}}(?:-[{_LOW}]+)?))?"
                         rf"(?![\w'’])")
_SENTENCE_START = re.compile(r"(?:^|[.!?…\n•*-])[ \t\"«»]*$")
# first names that are also places or words ("à Florence", "la Marine", "en Lorraine"): only with a surname
_AMBIGUOUS_FIRST_NAMES = frozenset("""
alexandrie alexandria florence lorraine marine milan jordan victoria rose iris jade ambre eden flore violette
aurore constance victoire claire gloria line lise loan lois jan max ange gaspard
""".split())


@cache
def _gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """French-speaking first names and surnames, folded: faker's lists (MIT), read once on first use."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in ("fr_FR", "fr_BE", "fr_CA", "fr_CH", "fr_DZ"):
        provider = import_module(f"faker.providers.person.{locale}").Provider
        first.update(fold(n) for n in (*provider.first_names_male, *provider.first_names_female))
        last.update(fold(n) for n in provider.last_names)
    return (frozenset(n for n in first if len(n) > 2 and n not in _STOP),
            frozenset(n for n in last if len(n) > 2 and n not in _STOP))


def _bare(word: str) -> str:
    """A word as the stop list and the gazetteer know it: folded, elision cut ("d'Estaing" → "estaing")."""
    return _ELISION.sub("", fold(word))


def _is_first_name(word: str) -> bool:
    first_names = _gazetteer()[0]
    return _bare(word) in first_names or _bare(word).split("-")[0] in first_names


def _name_at(text: str, pos: int, limit: int = 3) -> tuple[int, int] | None:
    """The capitalised name starting at ``pos``: up to ``limit`` words, particles between them ("Le Goff",
    "de La Fontaine"), a final initial ("Marie L."); it stops at a title, a service or a function word."""
    start = end = None
    words = 0
    while words < limit:
        at = pos if start is None else _SPACES.match(text, pos).end()
        if start is not None and at == pos:
            break  # the next word is not separated by a space: punctuation, a line break
        particle = _PARTICLE.match(text, at)
        if particle:
            after = _NAME_WORD.match(text, particle.end())
            leading_ok = particle.group()[0].isupper() or particle.group().startswith(_LEADING_PARTICLES)
            if after and _bare(after.group()) not in _STOP and (start is not None or leading_ok):
                start = at if start is None else start
                at = particle.end()
        m = _NAME_WORD.match(text, at)
        if m is None or _bare(m.group()) in _STOP:
            initial = _INITIAL.match(text, at)
            if m is None and initial and end is not None:
                end = initial.end()
            break
        start = at if start is None else start
        end = pos = m.end()
        words += 1
    return None if end is None or start is None else (start, end)


def _names(text: str) -> Iterator[Span]:
    def span(found: tuple[int, int] | None) -> Iterator[Span]:
        if found:
            yield Span("name", found[0], found[1], text[found[0]:found[1]])

    for cue in (_CIVILITY, _INTRODUCTION, _RELATIVE):
        for m in cue.finditer(text):
            yield from span(_name_at(text, _SPACES.match(text, m.end()).end()))
    for m in _INTRODUCTION.finditer(text):  # "je m'appelle kevin durand", typed without capitals
        lower = _LOWER_NAME.match(text, _SPACES.match(text, m.end()).end())
        if lower and _is_first_name(lower.group(1)):
            surname = bool(lower.group(2)) and _bare(lower.group(2)) not in _STOP | _BREAKS
            end = lower.end(2) if surname else lower.end(1)
            yield from span((lower.start(), end))
    for m in _I_AM.finditer(text):  # "je suis Marie Dubois", never "je suis Française"
        at = _SPACES.match(text, m.end()).end()
        word = _NAME_WORD.match(text, at)
        if word and _is_first_name(word.group()):
            yield from span(_name_at(text, at))
    yield from _signature(text)
    yield from _known_first_names(text)


def _signature(text: str) -> Iterator[Span]:
    """A signature: the name after "Cordialement," or "Merci," near the end of the message, or two to four
    capitalised words alone on one of its last lines ("Aïssatou Camara", above a phone or an address)."""
    tail = max(0, len(text) - 300)
    for m in _SIGN_OFF.finditer(text, tail):
        at = m.end()
        civility = _CIVILITY.match(text, at)
        if civility:
            at = _SPACES.match(text, civility.end()).end()
        found = _name_at(text, at, limit=4)
        if found and _LINE_END.match(text, found[1]):
            yield Span("name", found[0], found[1], text[found[0]:found[1]])
    lines = [m for m in re.finditer(r"[^\n]+", text) if m.group().strip()]
    for i in range(max(1, len(lines) - 3), len(lines)):  # never the first line: a title or a greeting
        found = _name_at(text, _SPACES.match(text, lines[i].start()).end(), limit=4)
        if not found or not _LINE_END.match(text, found[1]):
            continue
        words = text[found[0]:found[1]].split()
        if (2 <= len(words) and not any(w[0].islower() for w in words)  # not "Pays de la Loire"
                and not all(w.isupper() and len(w) <= 4 for w in words)  # not "CERT PCI"
                and re.search(r"[.!?…]\s*$", lines[i - 1].group())  # the body ended above it
                and all(re.search(r"[\d@]", below.group()) for below in lines[i + 1:])):  # contacts below
            yield Span("name", found[0], found[1], text[found[0]:found[1]])


def _known_first_names(text: str) -> Iterator[Span]:
    """A known first name followed by one or two capitalised words ("Jean-Pierre Martin"), with a surname
    before it in capitals or from the list ("DUBOIS Marie"), or alone within a sentence ("merci à Kevin");
    not "Saint-Jean" nor "lycée Victor Hugo"."""
    last_names = _gazetteer()[1]
    for m in _NAME_WORD.finditer(text):
        if not _is_first_name(m.group()) or _INSTITUTION_BEFORE.search(text, max(0, m.start() - 60),
                                                                         m.start()):
            continue
        gap = _SPACES.match(text, m.end()).end()
        following = _name_at(text, gap, limit=2) if gap > m.end() else None
        before = re.search(r"(\S+)[ \t]+$", text[max(0, m.start() - 40):m.start()])
        start = m.start()
        if before and _NAME_WORD.fullmatch(before.group(1)) and _bare(before.group(1)) not in _STOP and (
                before.group(1).isupper() or _bare(before.group(1)) in last_names):
            start = m.start() - len(before.group(0))
        if following or start < m.start():
            end = following[1] if following else m.end()
            yield Span("name", start, end, text[start:end])
        elif (not m.group().isupper() and _bare(m.group()) not in _AMBIGUOUS_FIRST_NAMES
              and not _SENTENCE_START.search(text, max(0, m.start() - 20), m.start())
              and not (before and before.group(1)[0].isupper() and _bare(before.group(1)) not in _STOP)):
            # "merci à Kevin", "Bonjour Kevin": neither at a sentence's start nor after a capitalised word
            # that is no greeting ("lycée Victor Hugo": that was judged with "Victor")
            yield Span("name", m.start(), m.end(), m.group())


def _repeated_names(text: str, spans: list[Span]) -> list[Span]:
    """Later (or earlier) mentions of a found name's words on their own: "M. Dubois" after "Marie Dubois"."""
    words = {w for s in spans if s.kind == "name" for w in re.findall(r"[\w'’-]+", s.text)
             if len(_bare(w)) > 2 and _bare(w) not in _STOP}
    taken = bytearray(len(text))
    for span in spans:
        _take(taken, span)
    extra = [Span("name", m.start(), m.end(), m.group()) for word in sorted(words)
             for m in re.finditer(rf"(?<![\w'’-]){re.escape(word)}(?![\w'’-])", text)]
    return [span for span in extra if _take(taken, span)]
