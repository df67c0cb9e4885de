"""Sessions' channel_type is PostHog's: cases whose channel PostHog's own rules decide.

Each case is a session (its events and their properties) and the channel PostHog gives it, taken
from PostHog's code and tests, never from bqtui's SQL: ``test_channel_type.py`` (PostHog's tests
of its channel types, cited by test name), or a rule of ``channel_type.py`` with the domain table
``channel_definitions.json`` (cited as the rule and the table's row). The versions read are those
README: Models names. Every case runs through the sessions model's real query on the embedded
ClickHouse.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import clickhouse_connect
import pytest

from bqtui.core.config import ExportConfig, Model
from bqtui.demo import data as demo_data
from bqtui.models.channel_type import CHANNEL_TYPES, load_definitions
from bqtui.models.sessions import SESSIONS

PV = "$pageview"
T0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
WINDOW = (datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC))
TEST = "PostHog test_channel_type.py::"  # the expectation is PostHog's test's


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    why: str  # PostHog's test, or its rule and the domain table's row, that decides it
    properties: dict = field(default_factory=dict)  # of a lone $pageview
    events: tuple = ()  # (event, properties) in time order, instead of a lone $pageview

    def session_events(self) -> tuple:
        return self.events or ((PV, self.properties),)


def ref(domain: str, **properties) -> dict:
    return {"$referring_domain": domain, **properties}


CASES = (
    # -- PostHog's tests (posthog/hogql/database/schema/test/test_channel_type.py) -----------
    Case("direct", "Direct", TEST + "test_direct", ref("$direct")),
    Case(
        "direct_empty_strings",
        "Direct",
        TEST + "test_direct_empty_string",
        ref("$direct", utm_source="", utm_medium="", utm_campaign="", gad_source=""),
    ),
    Case(
        "direct_null_strings",
        "Direct",
        TEST + "test_direct_null_string",
        ref(
            "$direct", utm_source="null", utm_medium="null", utm_campaign="null", gad_source="null"
        ),
    ),
    Case(
        "cross_network",
        "Cross Network",
        TEST + "test_cross_network",
        ref("$direct", utm_campaign="cross-network"),
    ),
    Case(
        "paid_shopping_domain",
        "Paid Shopping",
        TEST + "test_paid_shopping_domain",
        ref("www.ebay.co.uk", utm_medium="ppc"),
    ),
    Case(
        "paid_shopping_source",
        "Paid Shopping",
        TEST + "test_paid_shopping_source",
        {"utm_source": "ebay", "utm_medium": "ppc"},
    ),
    Case(
        "paid_shopping_campaign",
        "Paid Shopping",
        TEST + "test_paid_shopping_campaign",
        {"utm_campaign": "shopping", "utm_medium": "ppc"},
    ),
    Case(
        "paid_search_gclid",
        "Paid Search",
        TEST + "test_paid_search",
        ref("www.google.co.uk", gclid="some-gclid"),
    ),
    Case(
        "paid_search_source",
        "Paid Search",
        TEST + "test_paid_search_source",
        {"utm_source": "yahoo", "utm_medium": "ppc"},
    ),
    Case(
        "paid_video_domain",
        "Paid Video",
        TEST + "test_paid_video",
        ref("youtube.com", utm_medium="cpc"),
    ),
    Case(
        "paid_video_source",
        "Paid Video",
        TEST + "test_paid_video_source",
        {"utm_source": "youtube.com", "utm_medium": "cpc"},
    ),
    Case("organic_video", "Organic Video", TEST + "test_organic_video", ref("youtube.com")),
    Case(
        "red_herring_utm_is_direct",
        "Direct",
        TEST + "test_direct_with_red_herring_utm_tags_is_direct",
        ref("$direct", utm_source="what", utm_medium="who", utm_campaign="slim shady"),
    ),
    Case("no_info_is_unknown", "Unknown", TEST + "test_no_info_is_unknown / test_empty_session"),
    Case(
        "unknown_domain_is_referral",
        "Referral",
        TEST + "test_unknown_domain_is_referral",
        ref("some-unknown-domain.example.com"),
    ),
    Case(
        "numbers",
        "Referral",
        TEST + "test_doesnt_fail_on_numbers",
        ref("example.com", utm_source=123, utm_medium=123, utm_campaign=123),
    ),
    Case(
        "yahoo_search_ad",
        "Paid Search",
        TEST + "test_yahoo_search_for_shoes",
        ref(
            "uk.search.yahoo.com",
            utm_source="bing",
            utm_medium="cpc",
            utm_campaign="Bing购物_GB_ROI_31148户外运动_兜底_通投_CHERIE_0812",
            msclkid="98833ce81fa416f104e8599a17a48b7d",
        ),
    ),
    Case(
        "chrome_google_ad",
        "Paid Search",
        TEST + "test_chrome_google_search_for_shoes",
        ref("$direct", gad_source="1", gclid="CjwKCAiA98WrBhAYEiwA2WvhOuiyZpOvzXUVBP0KNplo9E"),
    ),
    Case(
        "firefox_google_ad",
        "Paid Search",
        TEST + "test_firefox_google_search_for_shoes",
        ref(
            "$direct",
            gad_source="1",
            utm_campaign="PMax // UK // Lifestyle Shoes",
            utm_medium="pmax",
            utm_source="google",
        ),
    ),
    Case(
        "daily_mail_ad",
        "Paid Unknown",
        TEST + "test_daily_mail_ad_click",
        ref(
            "2bb5cd7f10ba63d8b55ecfac1a3948db.safeframe.googlesyndication.com",
            gclid="EAIaIQobChMIxvGy5rr_ggMVYi0GAB0KSAumEAEYASABEgLZ2PD_BwE",
        ),
    ),
    Case("google_organic", "Organic Search", TEST + "test_google_organic", ref("www.google.com")),
    Case("youtube_organic", "Organic Video", TEST + "test_youtube_organic", ref("www.youtube.com")),
    Case(
        "youtube_ad",
        "Paid Video",
        TEST + "test_youtube_sidebar_ad / test_youtube_video_ad",
        ref("www.youtube.com", gclid="CjwKCAiAmsurBhBvEiwA6e-WPNVcMzaGnrW8G2Wd4Ye"),
    ),
    Case(
        "facebook_sidebar_ad",
        "Paid Social",
        TEST + "test_facebook_sidebar_ad",
        ref(
            "l.facebook.com",
            utm_source="facebook",
            utm_medium="cpc",
            utm_campaign="120201466136570051",
            fbclid="IwAR30EpkagUJ3vLo7_tl0R8FjnA3vnm5d6",
        ),
    ),
    Case(
        "facebook_feed_ad",
        "Paid Social",
        TEST + "test_facebook_feed_ad",
        ref(
            "l.facebook.com",
            utm_source="facebook",
            utm_medium="paid",
            utm_campaign="UK_EN_TOF_Purchase_BAU_ABO_NoScale_19.05.23",
            fbclid="IwAR3KhttbYqH0GWskV5LGQKXnPKmHwaKdW8gvHbEPHR5IYX8GDf2hhxAslso",
        ),
    ),
    Case(
        "facebook_feed_organic",
        "Organic Social",
        TEST + "test_facebook_feed_organic_link",
        ref("l.facebook.com", fbclid="IwAR1ZEOUVr76FRjZWnIio-v0gl5WWvd8soknOd6W6h580Grk34"),
    ),
    Case(
        "bing_ad",
        "Paid Search",
        TEST + "test_bing_ad_click (chrome)",
        ref(
            "www.bing.com",
            utm_source="bing",
            utm_medium="cpc",
            utm_campaign="BNG:MRP:EU:GB",
            msclkid="f72b49e2bf2719cb4ee22c91ac4963a7",
        ),
    ),
    Case(
        "bing_ad_no_referrer",
        "Paid Search",
        TEST + "test_bing_ad_click (firefox)",
        ref("$direct", utm_source="bing", utm_medium="cpc", utm_campaign="8 - Shopping - Clothing"),
    ),
    Case("bing_organic", "Organic Search", TEST + "test_bing_organic_click", ref("www.bing.com")),
    Case(
        "duckduckgo_organic",
        "Organic Search",
        TEST + "test_duckduckgo_organic_click",
        ref("duckduckgo.com"),
    ),
    Case(
        "duckduckgo_ad",
        "Paid Search",
        TEST + "test_duckduckgo_paid_click",
        ref(
            "duckduckgo.com",
            utm_source="bing",
            utm_medium="cpc",
            msclkid="0c97748ea8581c0fa51611f9afccba18",
        ),
    ),
    Case("fbclid_only", "Organic Social", TEST + "test_fbclid_only", ref("$direct", fbclid="ABC")),
    Case(
        "paid_is_case_insensitive",
        "Paid Social",
        TEST + "test_zendesk_ticket_14945",
        {
            "utm_source": "Facebook",
            "utm_medium": "Paid",
            "utm_campaign": "Foo",
            "referring_domain": "l.facebook.com",
            "gad_source": "",
        },
    ),
    Case(
        "medium_before_referrer_email",
        "Email",
        TEST + "test_zendesk_ticket_14945",
        ref("bing.com", utm_source="substack", utm_medium="email"),
    ),
    Case(
        "medium_before_referrer_affiliate",
        "Affiliate",
        TEST + "test_zendesk_ticket_14945",
        ref("bing.com", utm_source="Foo", utm_medium="affiliate"),
    ),
    Case(
        "partnership_is_affiliate",
        "Affiliate",
        TEST + "test_zendesk_ticket_14945",
        ref("foo.com", utm_source="Foo", utm_medium="partnership"),
    ),
    Case(
        "hacker_news_referrer",
        "Organic Social",
        TEST + "test_hacker_news",
        ref(
            "news.ycombinator.com",
            utm_source="",
            utm_medium="in-product",
            utm_campaign="empty-state-docs-link",
            gad_source="",
        ),
    ),
    Case(
        "hacker_news_source",
        "Organic Social",
        TEST + "test_hacker_news",
        ref(
            "$direct",
            utm_source="news.ycombinator.com",
            utm_medium="in-product",
            utm_campaign="empty-state-docs-link",
            gad_source="",
        ),
    ),
    Case(
        "google_plus_source",
        "Organic Social",
        TEST + "test_google_plus",
        ref("$direct", utm_source="plus.google.com"),
    ),
    Case(
        "google_plus_referrer", "Organic Social", TEST + "test_google_plus", ref("plus.google.com")
    ),
    Case("gmail_app", "Email", TEST + "test_gmail_app", ref("com.google.android.gm")),
    Case(
        "gad_source_alone",
        "Paid Search",
        "PostHog test_sessions_v3.py::test_channel_type",
        {"gad_source": "1"},
    ),
    # -- The rules of channel_type.py with the domain table ------------------------------------
    Case(
        "issue_chatgpt",
        "Organic Search",
        "organic: lookupOrganicSourceType(referring_domain); table: chatgpt.com Organic Search",
        ref("chatgpt.com"),
    ),
    Case(
        "issue_x_com_is_not_a_substring",
        "Referral",
        "organic: no table row for dropbox.com → referring domain set → Referral",
        ref("www.dropbox.com"),
    ),
    Case(
        "issue_google_is_not_a_substring",
        "Referral",
        "organic: no table row for ad.doubleclick.net or doubleclick.net → Referral",
        ref("ad.doubleclick.net"),
    ),
    Case(
        "issue_gmail_web",
        "Email",
        "organic: table mail.google.com (source) Email",
        ref("mail.google.com"),
    ),
    Case(
        "issue_linkedin_cpc",
        "Paid Social",
        "paid (medium cpc): lookupPaidSourceType(source); table: linkedin Paid Social",
        {"utm_source": "linkedin", "utm_medium": "cpc"},
    ),
    Case(
        "issue_msclkid_is_not_an_input",
        "Direct",
        "direct: $direct, no medium or source, no fbclid (msclkid is not an input)",
        ref("$direct", msclkid="f72b49e2bf2719cb4ee22c91ac4963a7"),
    ),
    Case("t_co_exact", "Organic Social", "organic: table t.co Organic Social", ref("t.co")),
    Case(
        "instagram_subdomain",
        "Organic Social",
        "organic: l.instagram.com is in the table (Organic Social)",
        ref("l.instagram.com"),
    ),
    Case(
        "registrable_domain_lookup",
        "Organic Search",
        "organic: images.google.de not in the table → registrable google.de Organic Search",
        ref("images.google.de"),
    ),
    Case(
        "referrer_is_not_lower_cased",
        "Referral",
        "organic: the referring domain is looked up as it is; WWW.GOOGLE.COM has no row",
        ref("WWW.GOOGLE.COM"),
    ),
    Case(
        "empty_referrer_is_referral",
        "Referral",
        "sessions_v3 passes '' on as the referring domain: not $direct, not NULL → Referral",
        ref(""),
    ),
    Case(
        "source_before_referrer",
        "Organic Video",
        "organic: lookupOrganicSourceType(source) before the referrer; table: youtube",
        ref("www.google.com", utm_source="youtube"),
    ),
    Case(
        "direct_source",
        "Direct",
        "direct: $direct, no medium, source in ('(direct)', 'direct', '$direct')",
        ref("$direct", utm_source="(direct)"),
    ),
    Case(
        "cross_network_before_paid",
        "Cross Network",
        "rule order: cross-network is tested before paid",
        ref(
            "www.google.com", utm_medium="cpc", utm_campaign="Summer Cross-Network Push", gclid="x"
        ),
    ),
    Case(
        "paid_medium_display",
        "Display",
        "paid (medium cpm): lookupPaidMediumType; table: cpm (medium) Display",
        {"utm_medium": "cpm", "utm_source": "newsletter-partner"},
    ),
    Case(
        "organic_medium_display",
        "Display",
        "organic: table banner (medium) Display",
        {"utm_medium": "banner"},
    ),
    Case(
        "paid_social_medium",
        "Paid Social",
        "paid (gclid): lookupPaidMediumType(medium); table: social (medium) Paid Social",
        {"gclid": "x", "utm_medium": "social"},
    ),
    Case(
        "paid_retargeting_shopping_referrer",
        "Paid Shopping",
        "paid (medium retargeting): lookupPaidSourceType(referring_domain); amazon.com",
        ref("www.amazon.com", utm_medium="retargeting"),
    ),
    Case(
        "paid_video_campaign",
        "Paid Video",
        "paid (gclid), nothing in the table: video campaign",
        ref("$direct", gclid="x", utm_campaign="summer_video_2024"),
    ),
    Case(
        "paid_fbclid",
        "Paid Social",
        "paid (gclid), nothing in the table: fbclid",
        ref("$direct", gclid="x", fbclid="y"),
    ),
    Case(
        "paid_unknown",
        "Paid Unknown",
        "paid (medium paidsearch), nothing decides",
        {"utm_medium": "paidsearch", "utm_source": "acme"},
    ),
    Case(
        "paid_gad_source_other",
        "Paid Unknown",
        "paid (gad_source 5), gad_source is not 1",
        ref("$direct", gad_source="5"),
    ),
    Case(
        "organic_shopping_referrer",
        "Organic Shopping",
        "organic: table m.alibaba.com Organic Shopping",
        ref("m.alibaba.com"),
    ),
    Case(
        "organic_shopping_campaign",
        "Organic Shopping",
        "organic: campaign matches ^(.*(([^a-df-z]|^)shop|shopping).*)$",
        ref("$direct", utm_source="newsletter-x", utm_campaign="E-Shop relaunch"),
    ),
    Case(
        "not_a_shopping_campaign",
        "Referral",
        "organic: 'workshop' does not match the shopping pattern → Referral",
        ref("blog.example.net", utm_campaign="workshop"),
    ),
    Case(
        "organic_video_campaign",
        "Organic Video",
        "organic: campaign matches ^(.*video.*)$",
        ref("blog.example.net", utm_campaign="product-video"),
    ),
    Case("push_medium", "Push", "organic: table push (medium) Push", {"utm_medium": "push"}),
    Case(
        "push_suffix",
        "Push",
        "organic: medium matches push$",
        ref("$direct", utm_medium="web-push"),
    ),
    Case(
        "push_source", "Push", "organic: table firebase (source) Push", {"utm_source": "firebase"}
    ),
    Case("sms", "SMS", "organic: table sms (source) SMS", {"utm_source": "sms"}),
    Case("audio", "Audio", "organic: table audio (medium) Audio", {"utm_medium": "audio"}),
    Case("email_source", "Email", "organic: table e-mail (source) Email", {"utm_source": "E-Mail"}),
    Case(
        "referral_medium",
        "Referral",
        "organic: table link (medium) Referral",
        ref("$direct", utm_medium="link"),
    ),
    Case(
        "utm_without_referrer_is_unknown",
        "Unknown",
        "organic: nothing in the table, no referring domain → Unknown",
        {"utm_source": "acme", "utm_medium": "newsletter-x"},
    ),
    # -- The entry event: the first $pageview/$screen, else the first event ---------------------
    Case(
        "issue_autocapture_first",
        "Email",
        "sessions_v3: entry_channel_type_properties of the first $pageview/$screen; organic: "
        "table email (medium) Email",
        events=(
            (
                "$autocapture",
                ref(
                    "www.google.com", utm_source="google", utm_medium="cpc", gclid="x", msclkid="y"
                ),
            ),
            (PV, ref("$direct", utm_source="newsletter", utm_medium="email")),
        ),
    ),
    Case(
        "later_pageview_does_not_count",
        "Direct",
        "sessions_v3: the entry event is the first $pageview",
        events=((PV, ref("$direct")), (PV, ref("www.google.com", gclid="x"))),
    ),
    Case(
        "screen_entry",
        "Unknown",
        "sessions_v3: the first $screen (no referrer) is the entry, not the custom event",
        events=(
            ("Application Opened", {"utm_source": "google", "utm_medium": "cpc"}),
            ("$screen", {"$screen_name": "Home"}),
        ),
    ),
    Case(
        "no_views_first_event",
        "Organic Search",
        "sessions_v3: without $pageview/$screen the first event is the entry",
        events=(("$autocapture", ref("www.google.com")), ("custom", ref("$direct"))),
    ),
)


def uuid7(at: datetime, n: int) -> str:
    millis = int(at.timestamp() * 1000)
    return str(uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62) | n))


def insert_cases(client, cases) -> dict[str, Case]:
    """One session per case; returns the cases by session id."""
    rows, by_session = [], {}
    for n, case in enumerate(cases):
        start = T0 + timedelta(minutes=n)
        session_id = uuid7(start, n)
        by_session[session_id] = case
        for k, (name, properties) in enumerate(case.session_events()):
            at = start + timedelta(seconds=k)
            props = {"$session_id": session_id, **properties}
            rows.append(
                (
                    uuid7(at, 10_000 * n + k + 1),
                    name,
                    json.dumps(props),
                    at,
                    1,
                    f"d{n}",
                    "",
                    at,
                    uuid.uuid4(),
                    at + timedelta(seconds=1),
                    at + timedelta(seconds=1),
                )
            )
    client.insert(
        "events",
        rows,
        column_names=[
            "uuid",
            "event",
            "properties",
            "timestamp",
            "team_id",
            "distinct_id",
            "elements_chain",
            "created_at",
            "person_id",
            "inserted_at",
            "_timestamp",
        ],
    )
    return by_session


def export_sessions(client, build_query) -> dict[str, dict]:
    export = ExportConfig(name="cases", dataset_id="d", table_id="t", model=Model.SESSIONS)
    result = client.query(
        build_query(export), parameters=SESSIONS.query_parameters(export, *WINDOW)
    )
    return {row["session_id"]: row for row in result.named_results()}


@pytest.fixture(scope="module")
def exported(chdb_dsn_for):
    client = clickhouse_connect.get_client(dsn=chdb_dsn_for("channel_cases"))
    demo_data.create_source_tables(client)
    client.command("TRUNCATE TABLE events")
    by_session = insert_cases(client, CASES)
    rows = export_sessions(client, SESSIONS.build_query)
    return {case.name: rows[session_id] for session_id, case in by_session.items()}


def test_there_are_enough_cases_and_every_channel_occurs():
    assert len({c.name for c in CASES}) == len(CASES) >= 50
    assert {c.expected for c in CASES} == set(CHANNEL_TYPES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_channel_type_is_posthogs(exported, case):
    assert exported[case.name]["channel_type"] == case.expected, case.why


def test_entry_fields_are_posthogs(exported):
    """sessions_v3: each entry field is the property of the first $pageview/$screen that has
    it, else of the first other event that has it (argMin over a Nullable value skips events
    without it); $entry_msclkid is the entry event's own (its map of lower-tier ad ids)."""
    row = exported["issue_autocapture_first"]
    assert (row["entry_utm_source"], row["entry_utm_medium"], row["entry_referring_domain"]) == (
        "newsletter",
        "email",
        "$direct",
    )
    # The $pageview has no gclid: the $autocapture's is the first there is.
    assert (row["entry_gclid"], row["entry_msclkid"]) == ("x", None)
    later = exported["later_pageview_does_not_count"]
    assert (later["entry_gclid"], later["entry_referring_domain"]) == ("x", "$direct")
    assert exported["numbers"]["entry_utm_source"] == "123"
    assert exported["yahoo_search_ad"]["entry_msclkid"] == "98833ce81fa416f104e8599a17a48b7d"


def test_the_domain_table_names_its_source():
    origin = load_definitions().origin
    assert origin["repository"] == "https://github.com/PostHog/posthog"
    assert origin["path"] == "posthog/models/channel_type/channel_definitions.json"
    assert len(origin["commit"]) == 40 and origin["copied"]
    definitions = load_definitions()
    assert definitions.source["chatgpt.com"] == ("Paid Search", "Organic Search")
    assert definitions.medium["email"] == (None, "Email")
