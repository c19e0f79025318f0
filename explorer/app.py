"""Coursewise catalogue explorer (Streamlit), over the read API only.

streamlit run explorer/app.py   # COURSEWISE_EXPLORER_API_URL, COURSEWISE_API_KEY

Pages (the address says which, so a page can be shared): search with filters (the default),
`?course=ID` a course with similar courses, `?learner=ID` a learner with recommendations.
Search shows title suggestions for the text in the box, highlights, a sort, and facet counts in
the sidebar (choosing a value sets that filter).
"""

from typing import Any

import streamlit as st

from explorer.client import LEVELS, SORTS, ReadApi

st.set_page_config(page_title="Coursewise explorer", layout="wide")


@st.cache_resource
def read_api() -> ReadApi:
    return ReadApi()


def go(**params: str) -> None:
    st.query_params.clear()
    for key, value in params.items():
        st.query_params[key] = value


def facts(course: dict[str, Any]) -> str:
    parts = [
        course.get("provider") or "",
        f"Level: {course['level']}" if course.get("level") else "",
        f"Rating: {course['rating']:.1f}" if course.get("rating") is not None else "",
        f"{course['duration_hours']:g} h" if course.get("duration_hours") is not None else "",
        "Free" if course.get("price") == 0 else "",
    ]
    return " · ".join(part for part in parts if part)


def course_list(items: list[dict[str, Any]], key: str) -> None:
    for item in items:
        with st.container(border=True):
            st.button(
                item["title"],
                key=f"{key}-{item['id']}",
                on_click=go,
                kwargs={"course": item["id"]},
                type="tertiary",
            )
            highlight = item.get("highlight") or {}
            # Safe as HTML: the API escapes everything in `highlight.title` and
            # `highlight.snippet` except its own <mark></mark> (docs/api.md, Highlights). Only
            # these two strings are ever rendered with unsafe_allow_html.
            if "<mark>" in (highlight.get("title") or ""):
                st.markdown(f"Title: {highlight['title']}", unsafe_allow_html=True)
            if highlight.get("snippet"):
                st.markdown(highlight["snippet"], unsafe_allow_html=True)
            line = facts(item)
            if "score" in item:
                line += f" · match {item['score']:.2f}"
            st.caption(line)
            if item.get("reason"):
                st.write(item["reason"])


# A facet's name, the filter (sidebar widget key) choosing one of its values sets, and that
# filter's value; None where no filter expresses the value (no provider, unknown duration, "50+",
# free=false, which the sidebar's checkbox cannot say).
def facet_filter(facet: str, value: Any) -> tuple[str, Any] | None:
    if value is None:
        return None
    if facet == "level":
        return ("level", value) if value in LEVELS else None
    if facet in ("language", "provider"):
        return facet, str(value)
    if facet == "skills":
        return "skill", str(value)
    if facet == "free":
        return ("free", True) if value is True else None
    if facet == "duration":
        upper = str(value).partition("-")[2]
        return ("max_duration", float(upper)) if upper else None
    return None


def set_filter(key: str, value: Any) -> None:
    # A callback runs before the rerun draws the sidebar, so its widgets may still be set.
    st.session_state[key] = value


def facet_counts(facets: dict[str, list[dict[str, Any]]]) -> None:
    st.sidebar.subheader("In these results")
    for facet, values in facets.items():
        if not values:
            continue
        st.sidebar.markdown(f"**{facet.capitalize()}**")
        for entry in values[:8]:
            value, count = entry["value"], entry["count"]
            shown = (
                "none"
                if value is None
                else str(value).lower()
                if value in (True, False)
                else str(value)
            )
            target = facet_filter(facet, value)
            if target is None:
                st.sidebar.text(f"{shown} ({count})")
            else:
                st.sidebar.button(
                    f"{shown} ({count})",
                    key=f"facet-{facet}-{value!r}",
                    on_click=set_filter,
                    args=target,
                    type="tertiary",
                )


def suggestions(query: str) -> None:
    # Streamlit has no keystroke event: these follow the box's text at each rerun (Enter, or
    # leaving the box).
    result = read_api().suggest(query)
    if not result.ok or not result.data["items"]:
        return
    st.markdown("Titles like this:")
    for item in result.data["items"]:
        st.button(
            f"→ {item['title']}",
            key=f"suggest-{item['id']}",
            on_click=go,
            kwargs={"course": item["id"]},
            type="tertiary",
        )


def sidebar() -> dict[str, Any]:
    st.sidebar.title("Coursewise")
    st.sidebar.button("Search the catalogue", on_click=go, use_container_width=True)
    learner = st.sidebar.text_input("Learner id", key="learner-id")
    if st.sidebar.button("Show recommendations", disabled=not learner):
        go(learner=learner)
        st.rerun()
    st.sidebar.subheader("Filters")
    level = st.sidebar.radio("Level", ["any", *LEVELS], key="level")
    return {
        "level": None if level == "any" else level,
        "provider": st.sidebar.text_input("Provider", key="provider").strip() or None,
        "language": st.sidebar.text_input("Language (e.g. en)", key="language").strip() or None,
        "skill": st.sidebar.text_input("Skill", key="skill").strip() or None,
        "free": st.sidebar.checkbox("Free only", key="free") or None,
        "max_duration": st.sidebar.number_input(
            "At most (hours)", min_value=0.0, value=None, step=1.0, key="max_duration"
        ),
    }


def search_page(filters: dict[str, Any]) -> None:
    st.title("Course catalogue")
    box, order = st.columns([4, 1])
    query = box.text_input("What do you want to learn?", key="query").strip()
    sort = order.selectbox("Sort by", SORTS, key="sort", disabled=not query)
    if query:
        suggestions(query)
    result = read_api().search(query, filters, sort=sort) if query else read_api().browse(filters)
    if not result.ok:
        st.warning(result.problem)
        return
    if result.data.get("degraded"):
        st.warning(
            "Matched by words only: meaning-based search ("
            + ", ".join(result.data["degraded"])
            + ") is unavailable right now, so results may miss courses that use other words."
        )
    if result.data.get("facets"):
        facet_counts(result.data["facets"])
    items = result.data["items"]
    heading = f'{len(items)} result(s) for "{query}"' if query else f"{len(items)} course(s)"
    st.subheader(heading + (" (more available)" if result.data.get("next_cursor") else ""))
    if not items:
        st.info("No course matches. Try other words or fewer filters.")
    course_list(items, "result")


def course_page(course_id: str) -> None:
    st.button("← Back to search", on_click=go)
    result = read_api().course(course_id)
    if not result.ok:
        st.warning(f"Course {course_id!r}: {result.problem}")
        return
    course = result.data
    st.title(course["title"])
    st.caption(facts(course))
    if course.get("url"):
        st.markdown(f"[Course page]({course['url']})")
    if course.get("skills"):
        st.write("Skills: " + ", ".join(course["skills"]))
    st.write(course["description"])
    st.header("Similar courses")
    similar = read_api().similar(course_id)
    if similar.status == 409:
        st.info("This course is not indexed yet; similar courses appear once it is.")
    elif not similar.ok:
        st.warning(similar.problem)
    elif not similar.data["items"]:
        st.info("No similar course yet.")
    else:
        course_list(similar.data["items"], "similar")


def learner_page(user_id: str) -> None:
    st.button("← Back to search", on_click=go)
    st.title(f"Learner {user_id}")
    learner = read_api().learner(user_id)
    if not learner.ok:
        if learner.status == 404:
            st.info("No such learner, or learners are not available on this server yet.")
        else:
            st.warning(learner.problem)
        return
    details = {k: v for k, v in learner.data.items() if not isinstance(v, (list, dict))}
    st.caption(" · ".join(f"{k}: {v}" for k, v in details.items() if k != "id"))
    st.header("Recommended for this learner")
    recommendations = read_api().recommendations(user_id)
    if not recommendations.ok:
        st.info(f"No recommendations yet ({recommendations.problem}).")
        return
    items = [
        {**item.get("course", {}), **{k: v for k, v in item.items() if k != "course"}}
        for item in recommendations.data["items"]
    ]
    if not items:
        st.info("No recommendations yet for this learner.")
    course_list([item for item in items if "id" in item and "title" in item], "recommended")


filters = sidebar()
if "course" in st.query_params:
    course_page(st.query_params["course"])
elif "learner" in st.query_params:
    learner_page(st.query_params["learner"])
else:
    search_page(filters)
