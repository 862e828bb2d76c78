"""Mechanisms and the named schemes that use them: what `intervention.mechanism` may say.

The scoping review behind evalkit (Monaghan, Waring, Giles & O'Brien 2024) found seven
recurring mechanisms said to improve how agencies respond when a child goes missing. Areas
rarely run "a mechanism": they run schemes (return home interviews, the Philomena Protocol,
a missing-persons coordinator ...) that bundle several. A design may therefore name the
review's mechanisms, a named scheme, or a list of either; a scheme expands into the
mechanisms it uses, so a synthesis can still pool evaluations by mechanism. docs/mechanisms.md
is the reader's version of these tables.
"""

from __future__ import annotations

#: the scoping review's seven mechanisms (and `other`), with the words the report uses
MECHANISM_WORDS = {
    "information_sharing": "joint data-sharing protocols, so each agency knows what the other knows about a missing child",
    "cross_agency_technology": "shared technology (for example read-only access to each other's systems)",
    "single_point_of_contact": "a single point of contact between the police and children's social care",
    "multiagency_meetings": "regular multi-agency meetings about children who go missing",
    "shared_terminology": "shared terms and definitions across agencies",
    "roles_responsibilities": "clear roles and responsibilities for each agency",
    "joint_training": "joint training of police and social-care staff",
    "other": "a mechanism not among the scoping review's seven",
}

MECHANISMS = tuple(MECHANISM_WORDS)

#: named schemes areas actually run: (the report's words, the mechanisms each uses)
SCHEMES = {
    "return_home_interviews": (
        "return home interviews (an independent interview offered within 72 hours of a child's return)",
        ("information_sharing", "multiagency_meetings")),
    "philomena_protocol": (
        "the Philomena Protocol (care homes share a profile of each child with the police before any episode)",
        ("information_sharing", "roles_responsibilities")),
    "missing_persons_coordinator": (
        "a missing-persons coordinator or dedicated police missing team",
        ("single_point_of_contact", "roles_responsibilities")),
    "operation_encompass": (
        "Operation Encompass-style notifications (the police tell a child's school before the next school day)",
        ("information_sharing",)),
    "multi_agency_safeguarding_hub": (
        "a Multi-Agency Safeguarding Hub (police, social care, health and education in one team)",
        ("information_sharing", "multiagency_meetings", "cross_agency_technology")),
}

#: every name `intervention.mechanism` accepts
KNOWN = MECHANISMS + tuple(SCHEMES)


def as_list(value) -> list[str]:
    """The declared mechanism(s) as a list: a single string stays valid."""
    if value is None:
        return ["other"]
    return [value] if isinstance(value, str) else list(dict.fromkeys(value))  # each named once


def expand(declared) -> list[str]:
    """The review's mechanisms behind the declared names, in declared order, each once.

    >>> expand(["return_home_interviews", "joint_training"])
    ['information_sharing', 'multiagency_meetings', 'joint_training']
    """
    out: list[str] = []
    for name in as_list(declared):
        for mechanism in SCHEMES[name][1] if name in SCHEMES else (name,):
            if mechanism not in out:
                out.append(mechanism)
    return out


def main_mechanism(declared) -> str:
    """The first (main) mechanism: what a synthesis pools by (context["intervention"]["mechanism"])."""
    return expand(declared)[0]


def words(declared, description: str | None = None) -> str:
    """The declared schemes and mechanisms in plain words, for "works through ..."."""
    parts = []
    for name in as_list(declared):
        if name in SCHEMES:
            text, uses = SCHEMES[name]
            parts.append(f"{text}, which uses {_join([MECHANISM_WORDS[m].split(',')[0] for m in uses])}")
        elif name == "other" and description:
            parts.append(description)
        else:
            parts.append(MECHANISM_WORDS[name])
    return "; and ".join(parts) if len(parts) > 1 and any("," in p for p in parts) else _join(parts)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


__all__ = ["MECHANISMS", "MECHANISM_WORDS", "SCHEMES", "KNOWN", "as_list", "expand", "main_mechanism", "words"]
