"""Plausible, deterministic content for a sandbox: people, services, passwords, avatars.

Everything here is a pure function of the ``random.Random`` it is given, so the same
seed gives the same names, passwords and pictures.
"""

from __future__ import annotations

import random
import string
import struct
import uuid
import zlib

FIRST_NAMES = (
    "Ada", "Betty", "Carol", "Dame", "Edith", "Frances", "Grace", "Hedy", "Irene", "Jean",
    "Kathleen", "Lynne", "Marlyn", "Nancy", "Orna", "Ping", "Ruth", "Sofia", "Thelma", "Ursula",
    "Alan", "Boris", "Claude", "Dennis", "Edsger", "Frank", "Guido", "Herbert", "Ivan", "John",
    "Ken", "Linus", "Marvin", "Niklaus", "Olaf", "Peter", "Richard", "Seymour", "Tim", "Whitfield",
    "Amara", "Bjorn", "Chen", "Dilnoza", "Emeka", "Fatima", "Giulia", "Hiroshi", "Ines", "Jamal",
    "Kofi", "Lucia", "Mehmet", "Nadia", "Oskar", "Priya", "Quentin", "Rania", "Sven", "Yuki",
)

LAST_NAMES = (
    "Lovelace", "Holberton", "Shaw", "Shirley", "Clarke", "Allen", "Hopper", "Lamarr", "Greibach", "Bartik",
    "Booth", "Conway", "Wescoff", "Lynch", "Yaari", "Fung", "Teitelman", "Kovalevskaya", "Estrin", "Burns",
    "Turing", "Beizer", "Shannon", "Ritchie", "Dijkstra", "Allen", "Rossum", "Simon", "Sutherland", "Backus",
    "Thompson", "Torvalds", "Minsky", "Wirth", "Dahl", "Landin", "Stallman", "Papert", "Berners-Lee", "Diffie",
    "Okafor", "Lindqvist", "Wei", "Karimova", "Nwosu", "Haddad", "Romano", "Tanaka", "Ferreira", "Bakr",
    "Mensah", "Alvarez", "Yilmaz", "Petrova", "Nilsson", "Raman", "Moreau", "Saleh", "Eriksen", "Sato",
)

SERVICES = (
    "GitLab", "GitHub", "Jenkins", "Grafana", "Prometheus", "Kibana", "Sentry", "Jira", "Confluence",
    "Nextcloud", "Mattermost", "Rocket.Chat", "Zammad", "Odoo", "Moodle", "WordPress", "Drupal",
    "Matomo", "Keycloak", "OpenVPN", "WireGuard", "pfSense", "Proxmox", "vCenter", "iDRAC", "iLO",
    "Synology", "TrueNAS", "MinIO", "Postfix", "Dovecot", "Roundcube", "Bitbucket", "Harbor",
    "Nexus", "Artifactory", "SonarQube", "Vault", "Consul", "Nomad", "Rancher", "ArgoCD", "Redmine",
    "Mailchimp", "Stripe", "PayPal", "AWS", "Azure", "OVHcloud", "Hetzner", "Scaleway", "Cloudflare",
    "Gandi", "DigitalOcean", "Salesforce", "HubSpot", "Zendesk", "Slack", "Zoom", "Figma", "Notion",
)

ENVIRONMENTS = ("prod", "staging", "dev", "test", "backup", "lab", "eu", "us", "internal", "legacy")

ACCOUNT_NAMES = ("admin", "root", "deploy", "ci", "backup", "monitoring", "service", "ops", "support", "api")

WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "amber", "basalt", "cobalt", "dune",
    "ember", "fjord", "granite", "harbor", "iris", "jasper", "kelp", "lagoon", "meadow", "nickel",
)

GROUP_NAMES = (
    "Accounting", "Administration", "Developers", "Operations", "Security", "Support", "Marketing",
    "Sales", "Human resources", "Legal", "Management", "Infrastructure", "Quality assurance",
    "Freelancers", "Network", "Data", "Design", "Research", "Procurement", "Facilities",
)

FOLDER_NAMES = (
    "Servers", "Databases", "Cloud", "Social media", "Banking", "Customers", "Suppliers", "Network",
    "Monitoring", "Mail", "Backups", "Certificates", "API keys", "Shared", "Archive", "Projects",
)

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#$%&()*+,-./:;<=>?@[]^_{|}~"
BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def make_uuid(rng: random.Random) -> str:
    """Return a UUID version 4 drawn from ``rng`` (lowercase, 36 characters)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_password(rng: random.Random) -> str:
    """Return a password of 12 to 32 characters from a printable alphabet."""
    return "".join(rng.choice(PASSWORD_ALPHABET) for _ in range(rng.randint(12, 32)))


def make_totp(rng: random.Random) -> dict[str, object]:
    """Return a passbolt TOTP object (base32 secret key, SHA1, 6 digits, 30 s)."""
    return {
        "secret_key": "".join(rng.choice(BASE32_ALPHABET) for _ in range(32)),
        "period": 30,
        "digits": 6,
        "algorithm": "SHA1",
    }


def make_sentence(rng: random.Random, words: int) -> str:
    """Return ``words`` random words as a capitalised sentence."""
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[:1].upper() + text[1:] + "."


def make_avatar(rng: random.Random, size: int = 64) -> bytes:
    """Return a small PNG picture: a symmetric 5x5 identicon in one colour, scaled to ``size`` pixels."""
    colour = bytes(rng.randint(40, 220) for _ in range(3))
    background = b"\xf0\xf0\xf0"
    cells = [[rng.random() < 0.5 for _ in range(3)] for _ in range(5)]
    pattern = [row + row[1::-1] for row in cells]
    scale = size // 5
    raw = bytearray()
    for y in range(scale * 5):
        raw.append(0)  # filter type: none
        row = pattern[y // scale]
        for x in range(scale * 5):
            raw += colour if row[x // scale] else background
    width = height = scale * 5

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(
        b"IEND", b""
    )
