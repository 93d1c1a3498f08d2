"""`ask`'s arguments: a question may start with "-" ("-5 or more?") and options may come
after it, with or without "--" before the question.

Click ends options at "--" and takes any word starting with "-" for an option, so
``ask photo.png -- "-5 or more?" --sandbox local`` would take "--sandbox" and "local" for
images, and ``ask photo.png "-5 or more?"`` would be "No such option". Here a word is an
option only if it is one of ask's own (with its value, when it takes one); every other word
is an image or the question, wherever "--" stands. An unknown word that looks like an
option ("--sandox") is still an unknown option, so a typo is not taken for a file.
"""

from __future__ import annotations

import re

import click

OPTION_LIKE = re.compile(r"^--?[A-Za-z][A-Za-z0-9-]*(=.*)?$")


class AskCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value, flags = set(), set()
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                names = param.opts + param.secondary_opts
                (flags if param.is_flag or param.count else takes_value).update(names)
        options, words = [], []
        after_dashes = False
        i = 0
        while i < len(args):
            word = args[i]
            name = word.split("=", 1)[0]
            if word == "--" and not after_dashes:
                after_dashes = True
            elif name in flags or name in takes_value:
                options.append(word)
                if name in takes_value and "=" not in word and i + 1 < len(args):
                    i += 1
                    options.append(args[i])
            elif not after_dashes and OPTION_LIKE.match(word):
                options.append(word)  # an unknown option: click says so, with its suggestions
            else:
                words.append(word)
            i += 1
        return super().parse_args(ctx, options + ["--"] + words)
