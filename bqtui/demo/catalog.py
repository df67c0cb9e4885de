"""The demo's catalogue: sites, devices, people's names and the awkward strings real data has.

Fixed tables only; `bqtui.demo.data` plays sessions over them.
"""

import string
from dataclasses import dataclass


@dataclass(frozen=True)
class _Site:
    host: str
    name: str
    pages: tuple[str, ...]
    checkout_pages: frozenset[str]


_SITES = (
    _Site(
        host="shop.example.com",
        name="Ünicorn Shop",
        pages=(
            "/",
            "/produits/crème-brûlée",
            "/商品/抹茶-ラテ",
            "/search",
            "/blog/🚀-spring-launch",
            "/cart",
            "/checkout",
        ),
        checkout_pages=frozenset({"/checkout"}),
    ),
    _Site(
        host="app.example.io",
        name="Example App",
        pages=(
            "/",
            "/pricing",
            "/docs/getting-started",
            "/signup",
            "/dashboard",
            "/settings/équipe",
            "/billing/upgrade",
        ),
        checkout_pages=frozenset({"/billing/upgrade"}),
    ),
    _Site(
        host="bücher.example.de",
        name="Bücherstube",
        pages=(
            "/",
            "/bücher/straße-der-ölsardinen",
            "/autoren/müller",
            "/suche",
            "/warenkorb",
            "/kasse",
        ),
        checkout_pages=frozenset({"/kasse"}),
    ),
)

_SCREENS = ("Home", "Produktdetails", "購物車", "Suche", "Checkout", "Profil 👤", "Einstellungen")

# (text, tag.class, href); hrefs to other hosts produce $external_click_url.
_CLICK_TARGETS = (
    ("Jetzt kaufen 🛒", "button.btn.btn-primary", None),
    ("カートに追加", "button.add-to-cart", None),
    ("S'inscrire", "a.nav-link", "/signup"),
    ("Pricing", "a.nav-link", "/pricing"),
    ("Read more →", "a.card-link", "/blog/🚀-spring-launch"),
    ("Menü", "span.menu-toggle", None),
    ("GitHub", "a.footer-link", "https://github.com/example/ünicorn"),
    ("Docs 📚", "a.footer-link", "https://docs.example.org/start"),
)

_SEARCH_QUERIES = ("café au lait", "抹茶", "👟 running shoes", "crème brûlée", "Ölsardinen", "sale")

# (referrer, referring domain, campaign parameters of the entry page); between them they give
# PostHog's channels Direct, Organic Search/Social/Video, Referral, Paid Search/Social/Video,
# Email, and Unknown for app sessions (bqtui/models/channel_type.py).
_ACQUISITION: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("$direct", "$direct", {}),
    ("https://www.google.com/", "www.google.com", {}),
    ("https://forum.bücher-freunde.example/t/42", "forum.bücher-freunde.example", {}),
    ("https://news.ycombinator.com/item?id=40123456", "news.ycombinator.com", {}),
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "www.youtube.com", {}),
    ("https://www.baidu.com/s?wd=抹茶", "www.baidu.com", {}),
    (
        "https://www.google.com/",
        "www.google.com",
        {
            "utm_source": "google",
            "utm_medium": "cpc",
            "utm_campaign": "spring_sale_2024",
            "utm_term": "crème brûlée",
            "gclid": "",
            "gad_source": "1",
        },
    ),
    (
        "https://l.facebook.com/",
        "l.facebook.com",
        {
            "utm_source": "facebook",
            "utm_medium": "paid_social",
            "utm_campaign": "🎉 launch week",
            "utm_content": "carousel_2",
            "fbclid": "",
        },
    ),
    (
        "https://www.bing.com/",
        "www.bing.com",
        {
            "utm_source": "bing",
            "utm_medium": "cpc",
            "utm_campaign": "brand",
            "utm_term": "example shop",
            "msclkid": "",
        },
    ),
    (
        "$direct",
        "$direct",
        {
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": "2024-05 Frühling",
            "utm_content": "hero_button",
        },
    ),
    ("https://www.youtube.com/", "www.youtube.com", {"gclid": ""}),
)
_CLICK_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
_ACQUISITION_WEIGHTS = (30, 20, 5, 4, 4, 3, 10, 8, 4, 6, 2)

_NAMES = (
    "Zoë Müller",
    "José García",
    "Ólafur Arnalds",
    "Siobhán Ní Bhriain",
    "François Lefèvre",
    "Łukasz Wróbel",
    "Ayşe Yılmaz",
    "Nguyễn Văn An",
    "Anna Smith",
    "Priya Patel",
    "山田 太郎",
    "李 雷",
    "김 민준",
    "Дмитрий Иванов",
    "🦄 Unicorn Fan",
)
_EMAIL_DOMAINS = ("example.com", "example.org", "exämple.de", "例え.jp", "example.co.uk")
_LOCALES = (
    ("Europe/Berlin", "de-DE", "Deutschland", "München"),
    ("Asia/Tokyo", "ja-JP", "日本", "東京"),
    ("America/Sao_Paulo", "pt-BR", "Brasil", "São Paulo"),
    ("Europe/Paris", "fr-FR", "France", "Besançon"),
    ("America/New_York", "en-US", "United States", "New York"),
    ("Europe/Zurich", "de-CH", "Schweiz", "Zürich"),
)
_WEB_DEVICES = (
    ("Mac OS X", "14.4.1", "Chrome", 124, "Desktop", 1728, 1117),
    ("Windows", "10.0", "Edge", 123, "Desktop", 1920, 1080),
    ("Windows", "10.0", "Firefox", 125, "Desktop", 2560, 1440),
    ("iOS", "17.4.1", "Mobile Safari", 17, "Mobile", 390, 844),
    ("Android", "14", "Chrome", 124, "Mobile", 412, 915),
    ("Linux", "", "Firefox", 126, "Desktop", 1366, 768),
)
_APP_DEVICES = (
    ("iOS", "17.4", "Apple", "iPhone15,2", "posthog-ios", "3.2.0", 393, 852),
    ("Android", "14", "Google", "Pixel 8", "posthog-android", "3.1.1", 412, 915),
    ("Android", "13", "samsung", "SM-S911B", "posthog-android", "3.1.1", 360, 780),
)

# Strings that reach ClickHouse in the wild and trip up naive JSON handling.
_TRUNCATED_EMOJI_TITLE = "Frühlingsangebote 🌸 bis zu 50 % Rabatt \ud83d"  # cut mid surrogate pair
_CONTROL_CHARACTER_TEXT = "Weiter\t→\x01"  # DOM text with a tab and a control character
_LONG_TEXT = "Lorem ipsum dolor sit amet, 你好世界, ça va? 🎉 " * 120  # ~6 KB
