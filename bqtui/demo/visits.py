"""One visit of a demo user: a web session (page views, clicks, searches, purchases, a
sign-up) or an app session (screens), with client timestamps, late deliveries and the person
updates on the way."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bqtui.demo.catalog import (
    _ACQUISITION,
    _ACQUISITION_WEIGHTS,
    _CLICK_ID_ALPHABET,
    _CLICK_TARGETS,
    _SCREENS,
    _SEARCH_QUERIES,
)
from bqtui.demo.rows import DELETION_VERSION_BUMP, EPOCH, Event, Person, User, person_row

if TYPE_CHECKING:  # the writer plays sessions: at run time this module does not need it
    from bqtui.demo.people import DemoWriter

# A session never spans more than this, so sessions starting before `end - MAX_SESSION_SPAN`
# are ingested before `end`.
MAX_SESSION_SPAN = timedelta(minutes=45)
SESSION_PAGE_BUDGET = timedelta(minutes=30)


class Session:
    """One visit: events with client timestamps and ingestion times, person updates on the way."""

    def __init__(self, writer: DemoWriter, user: User, started_at: datetime) -> None:
        rng = writer.rng
        self.writer = writer
        self.rng = rng
        self.user = user
        self.started_at = started_at
        self.id = writer.uuid7(started_at)
        self.window_id = writer.uuid7(started_at)
        # Offline apps and flaky networks deliver a session's events hours or days late, in one
        # burst starting at `started_at`.
        late_share = 0.15 if user.is_app else 0.03
        self.late_by = (
            timedelta(seconds=rng.uniform(3600, 3 * 86400)) if rng.random() < late_share else None
        )
        self.clock = started_at - (self.late_by or timedelta())
        self.events: list[Event] = []
        self.current_url: str | None = None
        self.entry_properties: dict[str, Any] = {}

    def elapsed(self) -> timedelta:
        return self.clock + (self.late_by or timedelta()) - self.started_at

    # -- web --------------------------------------------------------------------------------

    def play_web(self, *, identify: bool, merge_into: Person | None = None) -> None:
        rng = self.rng
        referrer, referring_domain, campaign = rng.choices(
            _ACQUISITION, weights=_ACQUISITION_WEIGHTS
        )[0]
        self.entry_properties = self._campaign_properties(campaign)
        is_bounce = rng.random() < 0.25
        page_count = 1 if is_bounce else min(8, 1 + int(rng.expovariate(1 / 2.5)))
        identify_on_page = rng.randrange(page_count) if identify else None
        pages = self.user.site.pages
        path = pages[0] if rng.random() < 0.5 else rng.choice(pages)
        for page_index in range(page_count):
            if page_index > 0:
                if self.elapsed() > SESSION_PAGE_BUDGET:
                    break
                assert self.current_url is not None  # set by the previous page view
                referrer, referring_domain = self.current_url, self.user.site.host
                path = rng.choice(pages)
            self._pageview(path, referrer, referring_domain)
            if page_index == 0:
                self.entry_properties = {}
            if not is_bounce:
                self._browse_page(path)
            if page_index == identify_on_page:
                self._identify(merge_into)
            if page_index < page_count - 1 or rng.random() < 0.5:
                duration = {"$prev_pageview_duration": round(rng.uniform(2, 120), 1)}
                self._emit("$pageleave", self._page_properties(path) | duration, gap=(2, 40))

    def _campaign_properties(self, campaign: dict[str, str]) -> dict[str, str]:
        properties = dict(campaign)
        token = self.writer.token
        if "gclid" in properties:
            properties["gclid"] = "Cj0KCQjw" + token(40, _CLICK_ID_ALPHABET)
        if "fbclid" in properties:
            properties["fbclid"] = "IwAR" + token(50, _CLICK_ID_ALPHABET)
        if "msclkid" in properties:
            properties["msclkid"] = token(32, "0123456789abcdef")
        return properties

    def _pageview(self, path: str, referrer: str, referring_domain: str) -> None:
        query = "?" + urlencode(self.entry_properties) if self.entry_properties else ""
        if path in ("/search", "/suche"):
            query = "?" + urlencode({"q": self.rng.choice(_SEARCH_QUERIES)})
        properties = self._page_properties(path, query)
        properties |= {
            "$referrer": referrer,
            "$referring_domain": referring_domain,
            "title": f"{self.user.site.name} – {path}",
            **self.entry_properties,
        }
        self._emit("$pageview", properties, gap=(2, 40))
        self.current_url = properties["$current_url"]
        if self.rng.random() < 0.6:
            lcp = round(self.rng.lognormvariate(7.2, 0.5), 1)
            vitals = self._page_properties(path, query) | {
                "$web_vitals_LCP_value": lcp,
                "$web_vitals_FCP_value": round(lcp * self.rng.uniform(0.4, 0.9), 1),
                "$web_vitals_CLS_value": round(self.rng.uniform(0, 0.3), 4),
            }
            self._emit("$web_vitals", vitals, gap=(1, 6))

    def _browse_page(self, path: str) -> None:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            text, element, href = rng.choice(_CLICK_TARGETS)
            properties = self._page_properties(path) | {"$event_type": "click", "$el_text": text}
            if href and href.startswith("https://"):
                properties["$external_click_url"] = href
            self._emit(
                "$autocapture",
                properties,
                gap=(1, 30),
                elements_chain=_elements_chain(element, text, href),
            )
        if path in ("/search", "/suche") or rng.random() < 0.05:
            query = rng.choice(_SEARCH_QUERIES)
            self._emit("search", self._page_properties(path) | {"search_query": query}, gap=(1, 10))
        if path in self.user.site.checkout_pages and rng.random() < 0.5:
            self._purchase(self._page_properties(path))
        elif rng.random() < 0.08:
            self._emit(
                "added_to_cart",
                self._page_properties(path) | {"quantity": rng.randint(1, 3)},
                gap=(1, 20),
            )

    def _page_properties(self, path: str, query: str = "") -> dict[str, Any]:
        host = self.user.site.host
        return {"$current_url": f"https://{host}{path}{query}", "$host": host, "$pathname": path}

    # -- app ----------------------------------------------------------------------------------

    def play_app(self, *, identify: bool) -> None:
        rng = self.rng
        self._emit("Application Opened", {"from_background": rng.random() < 0.4}, gap=(0, 1))
        screen_count = rng.randint(1, 8)
        identify_on_screen = rng.randrange(screen_count) if identify else None
        for screen_index in range(screen_count):
            if self.elapsed() > SESSION_PAGE_BUDGET:
                break
            screen = rng.choice(_SCREENS)
            self._emit("$screen", {"$screen_name": screen}, gap=(2, 50))
            if screen == "Checkout" and rng.random() < 0.5:
                self._purchase({"$screen_name": screen})
            if screen_index == identify_on_screen:
                self._identify(None)
        self._emit("Application Backgrounded", {}, gap=(1, 30))

    # -- custom events and identity --------------------------------------------------------

    def _purchase(self, properties: dict[str, Any]) -> None:
        user = self.user
        amount = round(self.rng.uniform(4.99, 249.0), 2)
        user.purchases += 1
        user.lifetime_value = round(user.lifetime_value + amount, 2)
        person_update = {"lifetime_value": user.lifetime_value, "orders": user.purchases}
        properties = properties | {
            "amount": amount,
            "currency": self.rng.choice(("EUR", "USD", "JPY", "CHF")),
            "product": self.rng.choice(("Crème brûlée", "抹茶ラテ", "Ölsardinen", "Pro plan ✨")),
            "$set": person_update,
        }
        event = self._emit("purchase", properties, gap=(3, 40))
        self.writer.bump_person(user.current_person(), event.ingested_at, **person_update)

    def _identify(self, merge_into: Person | None) -> None:
        """The user signs up, or logs in on a new device (`merge_into` their person)."""
        user, writer = self.user, self.writer
        anonymous_id = user.distinct_id
        anonymous_person = user.current_person()
        person = merge_into or anonymous_person
        plan = self.rng.choice(("free", "pro"))
        person_set = {"email": user.email, "name": user.name, "plan": plan}
        person_set_once = {
            "first_login_at": self.clock.isoformat(),
            "signup_source": user.site.host,
        }
        user.person = person
        user.distinct_id = user.email
        properties = {
            "$anon_distinct_id": anonymous_id,
            "$set": person_set,
            "$set_once": person_set_once,
        }
        at = self._emit("$identify", properties, gap=(1, 10)).ingested_at
        person.is_identified = True
        # $set_once keeps existing values; $set overwrites them.
        writer.bump_person(person, at, **(person_set_once | person.properties | person_set))
        if merge_into is None:
            writer.map_distinct_id(user, user.email, person.id, 0, at)
            self._emit("signed_up", {"plan": plan}, gap=(0, 2))
        else:
            writer.map_distinct_id(user, anonymous_id, person.id, 1, at)
            anonymous_person.version += DELETION_VERSION_BUMP
            writer.person_rows.append(person_row(anonymous_person, at, is_deleted=True))

    # -- emitting -----------------------------------------------------------------------------

    def _emit(
        self,
        name: str,
        properties: dict[str, Any],
        *,
        gap: tuple[float, float],
        elements_chain: str = "",
    ) -> Event:
        rng, user, writer = self.rng, self.user, self.writer
        if self.events:
            self.clock += timedelta(seconds=rng.uniform(*gap))
        timestamp = self.clock
        if self.late_by is None:
            ingested_at = timestamp + timedelta(seconds=rng.uniform(0.05, 2.5))
        else:
            ingested_at = (
                self.started_at
                + timedelta(milliseconds=20 * len(self.events))
                + timedelta(seconds=rng.uniform(0.05, 1))
            )
        event = Event(
            uuid=writer.uuid7(timestamp),
            event=name,
            properties={
                **user.device,
                **properties,
                "$session_id": self.id,
                "$window_id": self.window_id,
                "$ip": user.ip,
                "$insert_id": writer.token(16),
                "$time": round((timestamp - EPOCH).total_seconds(), 3),
            },
            timestamp=timestamp,
            created_at=ingested_at - timedelta(milliseconds=rng.randint(5, 400)),
            ingested_at=ingested_at,
            team_id=user.team_id,
            distinct_id=user.distinct_id,
            person_id="",
            elements_chain=elements_chain,
        )
        if user.person is None:
            user.person = writer.create_person(user, event, self._initial_person_properties(event))
            writer.map_distinct_id(user, user.distinct_id, user.person.id, 0, ingested_at)
        event.person_id = user.person.id
        user.last_ingested_at = max(user.last_ingested_at, ingested_at)
        self.events.append(event)
        writer.events.append(event)
        return event

    def _initial_person_properties(self, first: Event) -> dict[str, Any]:
        properties = first.properties
        initial = {
            f"$initial_{key[1:]}": properties[key]
            for key in (
                "$browser",
                "$os",
                "$device_type",
                "$current_url",
                "$pathname",
                "$referring_domain",
            )
            if key in properties
        }
        initial |= {f"$initial_{key}": value for key, value in self.entry_properties.items()}
        country, city = self.user.locale[2], self.user.locale[3]
        return initial | {"$geoip_country_name": country, "$geoip_city_name": city}


def _elements_chain(element: str, text: str, href: str | None) -> str:
    """PostHog's elements_chain: the clicked element, then its ancestors."""
    classes = element.partition(".")[2]
    attributes = f'attr__class="{classes.replace(".", " ")}"' if classes else ""
    if href:
        attributes += f'attr__href="{href}"href="{href}"'
    clicked = f'{element}:{attributes}nth-child="1"nth-of-type="1"text="{text}"'
    return ";".join(
        (
            clicked,
            'div.container:attr__class="container"nth-child="2"nth-of-type="1"',
            'body:nth-child="2"nth-of-type="1"',
        )
    )
