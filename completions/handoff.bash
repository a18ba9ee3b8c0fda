# SPDX-License-Identifier: MIT
# bash completion for handoff(1) and handoffctl (its reload client, whose
# first word is always reload or status). The option list follows
# src/options.c and src/client.c; tests/systemd/test-install.py checks that every option
# "handoff --help" prints is offered here.

# The pids of running handoff processes (for --pid), as "handoff reload" and
# "handoff status" take them.
_handoff_pids()
{
        local p
        for p in $(pgrep -x handoff 2>/dev/null); do
                [[ $p == "$$" ]] || printf '%s\n' "$p"
        done
}

# Signal names as --stop-signal takes them (TERM, SIGTERM and 15 all work;
# so do bash's RTMIN+N and RTMAX-N, counted from glibc's SIGRTMIN as
# handoff counts them).
_handoff_signals()
{
        local s
        for s in $(compgen -A signal); do
                [[ $s == SIG* && $s != *"("* ]] && printf '%s\n' "${s#SIG}"
        done
}

_handoff()
{
        local cur prev words cword split
        _init_completion -s -n := || return

        local i verb="" dashdash=0 newline=0
        # "handoff reload" / "handoff status": the verb must be the first word.
        if ((cword > 1)) && [[ ${words[1]} == @(reload|status) ]]; then
                verb=${words[1]}
        fi
        if [[ ${words[0]##*/} == handoffctl ]]; then
                if ((cword == 1)) && [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
                        return
                elif ((cword == 1)); then
                        COMPREPLY=($(compgen -W "reload status" -- "$cur"))
                        return
                fi
                [[ -n $verb ]] || return
        fi
        for ((i = 1; i < cword; i++)); do
                [[ ${words[i]} == -- ]] || continue
                # "handoff reload -- OPTIONS -- COMMAND": after the first
                # "--" come handoff's own options, as when it is started.
                if [[ $verb == reload ]] && ((!newline)); then
                        newline=$i
                        verb=
                        continue
                fi
                dashdash=$i
                break
        done

        # After "--" comes COMMAND and its own arguments: complete those as
        # bash would for the command itself.
        if ((dashdash)); then
                _command_offset $((dashdash + 1))
                return
        fi

        if [[ -n $verb ]]; then
                case $prev in
                --pid)
                        COMPREPLY=($(compgen -W "$(_handoff_pids)" -- "$cur"))
                        return
                        ;;
                --timeout)
                        COMPREPLY=($(compgen -W "5s 30s 2min infinity" -- "$cur"))
                        return
                        ;;
                esac
                local opts="--pid= --timeout= --help --"
                [[ $verb == status ]] && opts="--pid= --timeout= --json --help"
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
                        [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
                fi
                return
        fi

        case $prev in
        --stop-signal)
                COMPREPLY=($(compgen -W "$(_handoff_signals)" -- "${cur#SIG}"))
                return
                ;;
        --mode)
                COMPREPLY=($(compgen -W "auto supervise handover" -- "$cur"))
                return
                ;;
        --ready)
                COMPREPLY=($(compgen -W "notify delay:" -- "$cur"))
                [[ ${COMPREPLY-} == *: ]] && compopt -o nospace
                return
                ;;
        --systemd-fd-store)
                COMPREPLY=($(compgen -W "auto yes no" -- "$cur"))
                return
                ;;
        --notify-socket)
                COMPREPLY=($(compgen -W "auto path abstract" -- "$cur"))
                return
                ;;
        --notify-access)
                COMPREPLY=($(compgen -W "main all" -- "$cur"))
                return
                ;;
        --cgroup)
                COMPREPLY=($(compgen -W "auto yes no" -- "$cur"))
                return
                ;;
        --non-blocking)
                COMPREPLY=($(compgen -W "yes no" -- "$cur"))
                return
                ;;
        --pid-file)
                _filedir
                return
                ;;
        --working-directory)
                _filedir -d
                return
                ;;
        --environment-file)
                _filedir
                return
                ;;
        --listen | -l)
                # An address: unix:/path completes as a path, the rest has
                # no list to offer beyond the prefixes.
                if [[ $cur == unix:* || $cur == unix-dgram:* ]]; then
                        local pre=${cur%%:*}: path=${cur#*:}
                        COMPREPLY=($(compgen -f -- "$path"))
                        COMPREPLY=("${COMPREPLY[@]/#/$pre}")
                        compopt -o nospace
                else
                        COMPREPLY=($(compgen -W "tcp: udp: unix: unix-dgram:" -- "$cur"))
                        [[ ${COMPREPLY-} ]] && compopt -o nospace
                fi
                return
                ;;
        --start-timeout | --drain-timeout | --bake)
                COMPREPLY=($(compgen -W "500ms 5s 30s 90s 2min infinity" -- "$cur"))
                return
                ;;
        --fd-store-max)
                return
                ;;
        esac
        $split && return

        if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "--listen= --ready= --start-timeout= --stop-signal=
                        --drain-timeout= --bake= --mode= --notify-socket= --notify-access= --cgroup=
                        --pid-file= --working-directory= --environment-file= --fd-store-max= --systemd-fd-store= --verbose --help
                        --non-blocking= --version --" -- "$cur"))
                [[ ${COMPREPLY-} == *= ]] && compopt -o nospace
        elif ((cword == 1)); then
                COMPREPLY=($(compgen -W "reload status" -- "$cur"))
        fi
} &&
        complete -F _handoff handoff handoffctl

# ex: filetype=sh
