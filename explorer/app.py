"""Coursewise catalogue explorer (Streamlit), over the read API only.

streamlit run explorer/app.py   # COURSEWISE_EXPLORER_API_URL, COURSEWISE_API_KEY

Pages (the address says which, so a page can be shared): search with filters (the default),
`?course=ID` a course with similar courses, `?learner=ID` a learner with recommendations.
"""

from typing import Any

import streamlit as st

from explorer.client import LEVELS, ReadApi

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
            line = facts(item)
            if "score" in item:
                line += f" · match {item['score']:.2f}"
            st.caption(line)
            if item.get("reason"):
                st.write(item["reason"])


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
    query = st.text_input("What do you want to learn?", key="query").strip()
    result = read_api().search(query, filters) if query else read_api().browse(filters)
    if not result.ok:
        st.warning(result.problem)
        return
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
