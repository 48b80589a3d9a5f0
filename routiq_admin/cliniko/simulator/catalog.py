"""Fixed vocabularies the generator draws from: names, regions, practitioners, appointment types."""

from __future__ import annotations

CANCEL_REASONS = [(10, "Feeling Better"), (20, "Condition Worse"), (30, "Sick"), (40, "Away")]
CANCEL_REASONS += [(50, "Other"), (60, "Work"), (70, "COVID-19 related")]
REASON_DESC = dict(CANCEL_REASONS)

FIRST_F = (
    "Olivia Charlotte Amelia Isla Mia Ava Grace Chloe Emily Sophie Ella Zoe Ruby Lily Harper Evie Matilda "
    "Sienna Hannah Lucy Sarah Jessica Emma Rebecca Laura Megan Natalie Rachel Kate Anna Priya Mei Aisha "
    "Fatima Leila Maria Elena Ingrid Niamh Siobhan"
).split()
FIRST_M = (
    "Oliver Jack William Noah Thomas James Lucas Henry Charlie Leo Ethan Max Samuel Liam Harrison Mason "
    "Archie Cooper Lachlan Riley Daniel Michael David Benjamin Joshua Matthew Andrew Ryan Nathan Luke Arjun "
    "Wei Omar Ali Mateo Hugo Sven Sean Patrick Kenji"
).split()
FIRST = FIRST_F + FIRST_M
NICKS = dict(
    pair.split(":")
    for pair in (
        "William:Will Thomas:Tom James:Jim Samuel:Sam Benjamin:Ben Joshua:Josh Matthew:Matt Michael:Mike "
        "Daniel:Dan Rebecca:Bec Jessica:Jess Natalie:Nat Elena:Lena Charlotte:Charlie Olivia:Liv"
    ).split()
)
LAST = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Nguyen Thomas Walker "
    "Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson Clarke Patel "
    "Khan Lewis James Phillips Mitchell Campbell Turner Morris Murphy Cook O'Brien O'Connor McDonald "
    "MacKenzie Baker Young Scott Edwards Stewart Tran Le Chen Wang Li Zhang Kumar Singh Ali Hughes Carter "
    "Russo Rossi Papadopoulos Nowak Kowalski Schmidt Müller García López Fernández Costa Silva Ahmed "
    "Hassan Kim Park Sato Tanaka Cohen Levy Bell Ward Cox Fraser Hunt Graham Ross Marshall Hill Moore "
    "Parker Collins Stone Price Bennett Cooper Gray Reid Shaw Dunn"
).split()
DOMAINS = "gmail.com outlook.com yahoo.com icloud.com hotmail.com proton.me".split()
STREETS = "High St,George St,King St,Church St,Station Rd,Park Ave,Victoria Rd,Queen St,Bay Rd".split(",")
OCCUPATIONS = "Teacher,Nurse,Software Engineer,Accountant,Electrician,Student,Retired,Chef,Builder".split(",")
OCCUPATIONS += ["Lawyer", "Designer", "Sales Manager", None, None]
# shard region -> country, country code, (phone country digits, mobile prefix), two business sites
# (IANA zone, Cliniko zone label, standard UTC offset hours, state, city, post code)
REGIONS = {
    "au": (
        "Australia",
        "AU",
        ("61", "04"),
        [
            ("Australia/Sydney", "Sydney", 10, "NSW", "Sydney", "2000"),
            ("Australia/Melbourne", "Melbourne", 10, "VIC", "Melbourne", "3000"),
        ],
    ),
    "uk": (
        "United Kingdom",
        "GB",
        ("44", "07"),
        [
            ("Europe/London", "London", 0, "England", "London", "SW1A 1AA"),
            ("Europe/London", "London", 0, "England", "Manchester", "M1 1AE"),
        ],
    ),
    "ca": (
        "Canada",
        "CA",
        ("1", "4"),
        [
            ("America/Toronto", "Eastern Time (US & Canada)", -5, "ON", "Toronto", "M5H 2N2"),
            ("America/Vancouver", "Pacific Time (US & Canada)", -8, "BC", "Vancouver", "V6B 1A1"),
        ],
    ),
    "eu": (
        "Ireland",
        "IE",
        ("353", "08"),
        [
            ("Europe/Dublin", "Dublin", 0, "Dublin", "Dublin", "D02 X285"),
            ("Europe/Dublin", "Dublin", 0, "Cork", "Cork", "T12 X70A"),
        ],
    ),
}
PRACTITIONERS = [
    ("Dr", "Sarah", "Mitchell", "Physiotherapist"),
    (None, "James", "Nguyen", "Osteopath"),
    ("Dr", "Priya", "Patel", "Chiropractor"),
    (None, "Tom", "Fraser", "Remedial Massage Therapist"),
    (None, "Emma", "Kelly", "Exercise Physiologist"),
]
APPOINTMENT_TYPES = [  # name, category, minutes, colour; the last one is archived
    ("Initial Consultation", "Consultation", 60, "#4caf50"),
    ("Standard Consultation", "Consultation", 30, "#2196f3"),
    ("Extended Consultation", "Consultation", 45, "#3f51b5"),
    ("Review", "Follow-up", 30, "#ff9800"),
    ("Telehealth Consultation", "Telehealth", 30, "#9c27b0"),
    ("Legacy Assessment", None, 60, "#9e9e9e"),
]
