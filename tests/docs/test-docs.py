#!/usr/bin/python3
"""The documentation against the built programs: every option that
"handoff --help" (and "handoff reload --help", "handoff status --help")
shows is in handoff(1) and in README.md's options table, and each names
only options that exist; where --help gives a default, the manual page and
the README give the same one; every duration the documents show as an
example is one handoff takes; the exit codes handoff reload --help lists
are the manual page's; the demo unit README.md shows is the one shipped."""

import os
import re
import subprocess

from harness import HANDOFF, check, run

SOURCE = os.environ.get("HANDOFF_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def read(name):
    with open(os.path.join(SOURCE, name)) as f:
        return f.read()


def plain(roff):
    """Text of a roff fragment: fonts dropped, escapes as what they print."""
    text = re.sub(r"\\f[BIRP]", "", roff)
    for esc, ch in (("\\-", "-"), ("\\&", ""), ("\\%", ""), ("\\(em", "\u2014"), ("\\(lq", '"'), ("\\(rq", '"'),
                    ("\\e", "\\")):
        text = text.replace(esc, ch)
    return text


def help_text(*args):
    p = subprocess.run([HANDOFF, *args, "--help"], capture_output=True, text=True, timeout=10)
    check(p.returncode == 0, f"handoff {' '.join(args)} --help: exit {p.returncode}: {p.stderr}")
    return p.stdout


def help_options(text):
    """{"--name": its help text} of an option list: an entry starts with
    "-x --name" or "--name" after two to six spaces, and goes on in the
    lines indented further."""
    options, cur = {}, None
    for line in text.splitlines():
        m = re.match(r" {2,6}(?:-\w )?(--[a-z][a-z-]*)", line)
        if m:
            cur = m.group(1)
            options[cur] = line
        elif cur and line.startswith(" " * 8):
            options[cur] += " " + line.strip()
        else:
            cur = None
    return options


def man_section(name, sub=False):
    """The text of a .SH (or, with sub, .SS) section of handoff(1)."""
    man = read("man/handoff.1")
    head = ".SS " if sub else ".SH "
    m = re.search(rf"^{re.escape(head + name)}\n(.*?)(?=^\.S[HS] |\Z)" if sub else
                  rf"^{re.escape(head + name)}\n(.*?)(?=^\.SH |\Z)", man, re.M | re.S)
    check(m, f"handoff(1) has a section {name}")
    return m.group(1)


def man_options(section):
    """{"--name": its text} of each .TP entry of a section whose tag names
    long options."""
    options = {}
    entries = re.split(r"^\.TP\n", section, flags=re.M)[1:]
    for entry in entries:
        tag, _, body = entry.partition("\n")
        body = re.split(r"^\.(?:SS|RE|PP)\b", body, flags=re.M)[0]
        for name in re.findall(r"--[a-z][a-z-]*", plain(tag)):
            options[name] = plain(body)
    return options


def readme_options():
    """{"--name": default column} of README.md's options table (Usage)."""
    usage = read("README.md").split("\n## Usage\n", 1)[1].split("\n### ", 1)[0]
    options = {}
    for row in re.findall(r"^\| `-.*$", usage, re.M):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        for name in re.findall(r"`?(--[a-z][a-z-]*)", cells[0]):
            options[name] = cells[1].strip("`")
    return options


def help_default(text):
    """The default an option's --help text gives: "(default X)", or
    "X ... (default)" for the first of a list of choices."""
    m = re.search(r"\(default ([^):,;]+)", text)
    if m:
        return m.group(1).strip()
    m = re.search(r"=([a-z]+)\|.*\(default\)", text)
    return m.group(1) if m else None


def check_options_documented(documented, where):
    """The options "handoff --help" shows are those documented (a dict by
    "--name"), no more, no fewer; where says where they are documented."""
    helped = help_options(help_text())
    check(len(helped) >= 18, f"the option list of --help was read: {sorted(helped)}")
    check(not helped.keys() - documented.keys(), f"in --help but not {where}: "
                                                 f"{sorted(helped.keys() - documented.keys())}")
    check(not documented.keys() - helped.keys(), f"{where} but not in --help: "
                                                 f"{sorted(documented.keys() - helped.keys())}")


def test_every_option_in_help_is_in_the_man_page():
    check_options_documented(man_options(man_section("OPTIONS")), "under OPTIONS in handoff(1)")


def test_every_option_in_help_is_in_the_readme():
    check_options_documented(readme_options(), "in README.md's options table")


def test_defaults_agree():
    helped = help_options(help_text())
    man = man_options(man_section("OPTIONS"))
    readme = readme_options()
    compared = 0
    for name, text in helped.items():
        default = help_default(text)
        if default is None:
            continue
        compared += 1
        check(re.search(rf"\(default {re.escape(default)}\b|(?:^|\s){re.escape(default)} \(the default\)",
                        man.get(name, "")),
              f"{name}: --help says the default is {default}; handoff(1) says: {man.get(name)}")
        check(readme.get(name) == default,
              f"{name}: --help says the default is {default}; README.md says {readme.get(name)!r}")
    check(compared >= 5, f"defaults compared: {compared}")
    # An option with a default in the README says it in --help too.
    unsaid = [name for name, default in readme.items()
              if default and default != "handoff's own" and help_default(helped.get(name, "")) is None]
    check(not unsaid, f"README.md gives a default that --help does not say: {unsaid}")


def test_control_options_in_the_man_page():
    man = man_options(man_section("CONTROL COMMANDS"))
    for verb in ("reload", "status"):
        usage = help_text(verb).splitlines()[0]
        named = set(re.findall(r"--[a-z][a-z-]*", usage)) | {"--help"}
        check(not named - man.keys(), f"handoff {verb}: {sorted(named - man.keys())} not under CONTROL COMMANDS "
                                      "in handoff(1)")
    # And each one documented there is taken by one of the two verbs.
    for name in man:
        p = subprocess.run([HANDOFF, "status", name], capture_output=True, text=True, timeout=10)
        check("unrecognized option" not in p.stderr, f"handoff(1) documents {name} for the control commands: "
                                                     f"{p.stderr}")


def test_duration_examples_are_accepted():
    """A duration is checked by giving it to --start-timeout before --help:
    an invalid one exits 2, a valid one lets --help print and exit 0."""
    examples = set(re.findall(r"\d+(?:\.\d+)?(?:us|ms|s|min|h)\b", help_text().split("Durations", 1)[1]))
    examples |= {"infinity"}
    # handoff(1): every bold word of its Durations section that starts
    # with a digit or a point (\fB1min 30s\fR, \fB.5s\fR).
    bold = re.findall(r"\\fB(.*?)\\f[RP]", man_section("Durations", sub=True))
    examples |= {plain(b) for b in bold if re.match(r"\.?\d", plain(b))}
    readme = read("README.md")
    m = re.search(r"Durations use systemd's syntax: (.*?)\.\n", readme, re.S)
    check(m, "README.md says which durations it takes")
    examples |= set(re.findall(r"`([^`]+)`", m.group(1)))
    check(len(examples) >= 10, f"duration examples found: {sorted(examples)}")
    for d in sorted(examples):
        p = subprocess.run([HANDOFF, f"--start-timeout={d}", "--help"], capture_output=True, text=True, timeout=10)
        check(p.returncode == 0, f"the documented duration {d!r} is refused: {p.stderr}")


def test_client_exit_codes_agree():
    """handoff reload --help lists its exit codes; handoff(1) lists the same
    under EXIT STATUS."""
    text = " ".join(help_text("reload").split())
    listed = re.search(r"Exit status: (.*)", text).group(1)
    codes = {int(c) for c in re.findall(r"(?:^|; )(\d+) ", listed)}
    check(codes == {0, 1, 2, 3, 4}, f"codes in handoff reload --help: {listed}")
    section = man_section("handoff reload and handoff status", sub=True)
    man_codes = {int(c) for c in re.findall(r"^\\fB(\d+)\\fR$", section, re.M)}
    check(codes <= man_codes, f"handoff reload --help lists {sorted(codes)}, handoff(1) {sorted(man_codes)}")


def test_readme_shows_the_demo_unit():
    """README.md shows handoff-demo.service "stripped of its comments": the
    unit file without its comments, as installed with --prefix=/usr."""
    paths = {"@HANDOFF@": "/usr/bin/handoff", "@HANDOFFCTL@": "/usr/bin/handoffctl",
             "@DEMO_SERVER@": "/usr/libexec/handoff/demo-server"}
    unit = read("units/handoff-demo.service.in")
    for key, path in paths.items():
        unit = unit.replace(key, path)
    want = [line for line in unit.splitlines() if line and not line.startswith("#")]
    m = re.search(r"The service, stripped of its comments:\n\n```ini\n(.*?)```", read("README.md"), re.S)
    check(m, "README.md shows the demo service")
    shown = [line for line in m.group(1).splitlines() if line]
    check(shown == want, "README.md's demo service differs from units/handoff-demo.service.in: "
                         f"missing {[x for x in want if x not in shown]}, extra {[x for x in shown if x not in want]}")


if __name__ == "__main__":
    run([test_every_option_in_help_is_in_the_man_page, test_every_option_in_help_is_in_the_readme,
         test_defaults_agree, test_control_options_in_the_man_page, test_duration_examples_are_accepted,
         test_client_exit_codes_agree, test_readme_shows_the_demo_unit])
