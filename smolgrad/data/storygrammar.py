"""A small story grammar: the built-in stand-in for TinyStories when it cannot be had.

A story has a cast (a hero, a friend, a grown-up, an animal) and a setting (a place, a
thing, a food, the weather), drawn once so the story stays coherent, and a shape (a plot:
a lost thing, a new friend, a fear, a rescue, ...). Each shape is a list of beats; each beat
picks one of several sentences, and `{rule}` slots in a sentence expand, recursively, to
one of the rule's alternatives, so shapes, sentences, dialogue and details combine freely.
Everything is drawn from one `random.Random`, so a seed gives the same stories every time.

    from smolgrad.data.storygrammar import write_story
    shape, text = write_story(random.Random(0))
"""

from __future__ import annotations

import random
import re

_GIRLS = ["Mia", "Lucy", "Anna", "Zoe", "Ella", "Rosa", "Nora", "Ivy", "Lily", "Sara", "Kim", "Maya"]
_BOYS = ["Tom", "Sam", "Max", "Leo", "Ben", "Jack", "Finn", "Omar", "Tim", "Joe", "Raj", "Hugo"]

# Story-wide choices: drawn once per story, then fixed.
_SETTING = {
    "place": ["park", "beach", "forest", "garden", "farm", "lake", "hill", "market", "school", "zoo", "river",
              "meadow", "playground", "library", "village"],
    "thing": ["ball", "kite", "red hat", "blue box", "toy car", "book", "shell", "little boat", "drum", "green cup",
              "teddy bear", "yellow balloon", "shiny key", "paper crown", "map"],
    "food": ["apple", "cake", "sandwich", "banana", "cookie", "soup", "pear", "pie", "orange", "muffin"],
    "animal": ["dog", "cat", "bird", "rabbit", "duck", "frog", "horse", "fish", "turtle", "puppy", "kitten", "owl",
               "squirrel", "bee", "mouse"],
    "weather": ["sunny", "rainy", "windy", "cold", "warm", "cloudy", "snowy", "bright"],
    "grownup": ["Mom", "Dad", "Grandma", "Grandpa", "the teacher", "Aunt Jane", "Uncle Bob"],
    "fear": ["the dark", "thunder", "the deep water", "the big slide", "the loud truck", "the tall ladder"],
    "game": ["tag", "hide and seek", "catch", "a race", "a jumping game", "pretend pirates"],
    "color": ["red", "blue", "green", "yellow", "purple", "pink", "orange", "white"],
}

# Rules: each alternative may hold more {slots}.
_RULES = {
    "feel_good": ["happy", "proud", "glad", "excited", "calm", "thankful"],
    "feel_bad": ["sad", "worried", "upset", "scared", "lonely", "grumpy"],
    "big": ["big", "tall", "huge", "old", "round", "little", "soft", "shiny"],
    "said": ["said", "called", "whispered", "shouted", "cried"],
    "nice": ["happy", "fun", "wonderful", "lovely", "great"],
    "soon": ["Soon", "After a while", "Then", "Just then", "Suddenly", "At last"],
    "opening": [
        "Once upon a time, there was a {kind} {hero_kind} named {hero}.",
        "There once was a {kind} {hero_kind} called {hero}.",
        "In a small town near the {place}, there lived a {hero_kind} named {hero}.",
        "{hero} was a {kind} {hero_kind} who loved the {place}.",
        "One {weather} day, a {hero_kind} named {hero} went out to play.",
    ],
    "kind": ["little", "kind", "curious", "brave", "shy", "happy", "small", "clever"],
    "spot": ["under the bed", "behind a {big} rock", "in the grass", "near the door", "under a {big} tree",
             "by the fence", "in a {color} basket", "on top of the shelf"],
    "helper_line": ["Let me help you!", "Do not worry, we can do it together.", "I will look with you.",
                    "Come on, we can fix it!", "You are not alone."],
    "thanks_line": ["Thank you, {friend}!", "You are a good friend.", "I am so glad you came.",
                    "Thank you for helping me."],
    "ending": [
        "From that day on, {hero} and {friend} were best friends.",
        "{hero} smiled all the way home.",
        "That night, {hero} went to sleep with a big smile.",
        "{hero} learned that {lesson}.",
        "And they all had a {nice} day at the {place}.",
        "It was the best day ever.",
    ],
    "lesson": ["it is good to share", "friends help each other", "being brave can be fun",
               "it is best to tell the truth", "trying again is how you learn", "kind words make people happy"],
    "play": ["played {game}", "ran and laughed", "built a castle of sand", "sang songs", "looked at the clouds",
             "drew pictures with {color} chalk"],
}

# Story shapes: a list of beats, each a list of alternative sentences.
_SHAPES = {
    "lost_thing": [
        ["{opening}"],
        ["{hero} had a {thing} that {he} loved very much.", "{His} favorite toy was a {thing}."],
        ["One day, {hero} could not find the {thing}.", "One {weather} morning, the {thing} was gone!"],
        ["{hero} felt {feel_bad}. \"Where is my {thing}?\" {he} {said}.",
         "\"Oh no! My {thing} is lost!\" {hero} {said}."],
        ["{He} looked {spot} and {spot}, but it was not there.", "{He} asked {grownup}, but {grownup} did not know."],
        ["{soon}, {friend} came by. \"{helper_line}\" {friend_he} said.",
         "{soon}, {his} {animal} began to sniff and run."],
        ["They found the {thing} {spot}!", "At last, the {thing} was {spot}, safe and sound."],
        ["\"{thanks_line}\" {hero} {said}.", "{hero} hugged the {thing} and laughed."],
        ["{ending}"],
    ],
    "new_friend": [
        ["{opening}"],
        ["{hero} went to the {place}, but {he} did not know anyone there.",
         "{hero} was new at the {place} and felt {feel_bad}."],
        ["{He} sat alone and watched the other children {play_plain}.", "{He} held {his} {thing} and looked down."],
        ["Then a {hero_kind_other} named {friend} walked over. \"Hello! Do you want to play?\" {friend} asked.",
         "{soon}, {friend} sat next to {him}. \"I like your {thing},\" {friend_he} said."],
        ["{hero} smiled. \"Yes, please!\" {he} said.", "\"My name is {hero},\" {he} said softly."],
        ["They {play} until {grownup} called them home.", "They {play} and shared {a_food}."],
        ["{ending}"],
    ],
    "sharing": [
        ["{opening}"],
        ["{grownup} gave {hero} {a_food}. It looked very good.", "{hero} had {a_food} and a {thing}."],
        ["{friend} looked at it and asked, \"Can I have some?\"", "\"Can I play with your {thing}?\" {friend} asked."],
        ["\"No, it is mine!\" {hero} said, and {he} turned away.", "{hero} did not want to share."],
        ["{friend} felt {feel_bad} and walked away.", "{friend} looked at the ground and did not say a word."],
        ["{hero} did not feel good inside.", "{soon}, {hero} was {feel_bad} too. Playing alone was not fun."],
        ["{He} ran to {friend} and said, \"I am sorry. Let us share.\"",
         "{He} gave half to {friend}. \"Here, this is for you,\" {he} said."],
        ["{friend} smiled, and they {play}.", "\"{thanks_line}\" {friend} said, and they {play}."],
        ["{ending}"],
    ],
    "fear": [
        ["{opening}"],
        ["{hero} was afraid of {fear}.", "There was one thing {hero} did not like: {fear}."],
        ["One {weather} evening, {he} had to face {fear}.", "At the {place}, {hero} had to face {fear}, and {he} stopped."],
        ["\"I am scared,\" {hero} {said} to {grownup}.", "{His} legs felt weak and {his} heart went fast."],
        ["{grownup} held {his} hand. \"Take a deep breath. I am right here.\"",
         "{friend} said, \"{helper_line}\""],
        ["{hero} took one small step, then another.", "{hero} closed {his} eyes, counted to three and went."],
        ["It was not so bad after all! {hero} felt {feel_good}.", "{He} did it! {hero} laughed out loud."],
        ["{ending}"],
    ],
    "rescue": [
        ["{opening}"],
        ["One day at the {place}, {hero} heard a small sound.", "While {he} walked by the {place}, {hero} saw something move."],
        ["It was {a_animal}. It was stuck {spot}.", "{A_animal} had hurt its leg and could not get up."],
        ["\"Poor {animal}!\" {hero} {said}. \"I will help you.\"", "{hero} knelt down slowly so the {animal} would not run."],
        ["{He} called {friend}, and together they lifted it out.", "{He} gave it water and a bit of {food}."],
        ["The {animal} was {feel_good}. It jumped and played with {hero}.", "{soon}, the {animal} could walk again."],
        ["Every day after that, the {animal} came to visit {hero}.", "{grownup} said, \"You have a kind heart, {hero}.\""],
        ["{ending}"],
    ],
    "surprise": [
        ["{opening}"],
        ["It was {grownup_name}'s birthday, and {hero} wanted to make a surprise.",
         "{hero} and {friend} wanted to make a gift for {grownup}."],
        ["They made a {color} card and a cake with {food} on top.", "They painted a picture of the {place}."],
        ["But then the cake fell on the floor!", "But the {animal} ran over the picture with muddy feet!"],
        ["\"Oh no!\" {hero} {said}. {He} felt {feel_bad}.", "{friend} began to cry. It was all ruined."],
        ["\"We can make a new one,\" {friend} said. \"{helper_line}\"", "{hero} said, \"Let us try again, this time slowly.\""],
        ["The new one was even better. {grownup} loved it.", "When {grownup} saw the gift, {grownup} smiled and gave them a big hug."],
        ["{ending}"],
    ],
    "race": [
        ["{opening}"],
        ["{hero} and {friend} liked to run at the {place}.", "{hero} said to {friend}, \"Let us have a race to the {big} tree!\""],
        ["\"Ready, set, go!\" they shouted, and off they ran.", "They ran as fast as they could."],
        ["{friend} was in front, but then {friend_he} fell down.", "Just before the end, {friend} tripped on a stone."],
        ["{hero} stopped and helped {friend} up. \"Are you ok?\" {he} asked.",
         "{hero} did not run on. {He} went back to {friend}."],
        ["They walked to the tree together, hand in hand.", "\"We can both win,\" {hero} said, and they finished together."],
        ["{grownup} clapped. \"That was the best race I have seen!\"", "They laughed and ate {a_food} under the tree."],
        ["{ending}"],
    ],
    "dream": [
        ["{opening}"],
        ["One night, {hero} went to bed and had a strange dream.", "That night, {hero} fell asleep and began to dream."],
        ["In the dream, {he} could fly over the {place}.", "In the dream, {his} {thing} was as {big} as a house."],
        ["{A_animal} flew next to {him}. \"Hello, {hero}! Come with me,\" it said.",
         "{A_animal} that could talk said, \"Follow me to the {color} moon!\""],
        ["They flew past {color} clouds and {big} stars.", "They found a land made of {food} and {color} candy."],
        ["{hero} was {feel_good}, but {he} missed {grownup}.", "Then the wind got cold and {hero} wanted to go home."],
        ["{hero} woke up in {his} bed. {grownup} was there with {a_food}.", "{hero} opened {his} eyes. It was morning, and the sun was out."],
        ["\"What a dream!\" {hero} {said}.", "{He} told {friend} all about the {animal}."],
        ["{ending}"],
    ],
    "truth": [
        ["{opening}"],
        ["{hero} was playing with {his} {thing} in the house.", "{hero} was throwing a ball inside, though {grownup} said not to."],
        ["Crash! A {color} vase fell and broke.", "Oops! {hero} knocked over {grownup_name}'s cup, and it broke."],
        ["{hero} was {feel_bad}. {He} wanted to hide.", "{He} thought, \"Maybe I can say the {animal} did it.\""],
        ["But {hero} knew that was not right.", "{hero} thought about it for a long time."],
        ["{He} went to {grownup} and said, \"I broke it. I am sorry.\"", "\"It was me,\" {hero} said. \"I am sorry.\""],
        ["{grownup} gave {him} a hug. \"Thank you for telling the truth.\"",
         "{grownup} said, \"Things can break, but I am proud that you told me.\""],
        ["Together they cleaned up the pieces.", "Then they made a new one out of clay."],
        ["{ending}"],
    ],
    "trip": [
        ["{opening}"],
        ["One {weather} day, {hero}, {friend} and {grownup} went on a trip to the {place}.",
         "{grownup} said, \"Today we will go to the {place}!\" {hero} jumped up and down."],
        ["They packed {a_food}, a {thing} and a {color} blanket.", "On the way, they sang songs and counted cows."],
        ["At the {place}, they saw {a_animal} and {a_animal2}.", "At the {place}, they {play}."],
        ["{soon}, dark clouds came and it began to rain.", "{soon}, {friend} could not find the way back."],
        ["They ran under a {big} tree and waited.", "{grownup} looked at the map and found the path."],
        ["When the sun came out, they saw a {color} rainbow.", "They got home wet and tired, but {feel_good}."],
        ["{ending}"],
    ],
}

_SLOT = re.compile(r"\{(\w+)\}")


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _cast(rng: random.Random) -> dict[str, str]:
    """The story-wide choices: who is in it, where, with what."""
    hero_is_girl, friend_is_girl = rng.random() < 0.5, rng.random() < 0.5
    hero = rng.choice(_GIRLS if hero_is_girl else _BOYS)
    friend = rng.choice([n for n in (_GIRLS if friend_is_girl else _BOYS) if n != hero])
    he, his, him = ("she", "her", "her") if hero_is_girl else ("he", "his", "him")
    ctx = {key: rng.choice(options) for key, options in _SETTING.items()}
    ctx["animal2"] = rng.choice([a for a in _SETTING["animal"] if a != ctx["animal"]])
    grownup = ctx["grownup"]
    ctx.update(
        hero=hero, friend=friend, he=he, his=his, him=him, He=he.capitalize(), His=his.capitalize(),
        friend_he="she" if friend_is_girl else "he",
        hero_kind="girl" if hero_is_girl else "boy", hero_kind_other="girl" if friend_is_girl else "boy",
        a_food=_a(ctx["food"]), a_animal=_a(ctx["animal"]), A_animal=_a(ctx["animal"]).capitalize(),
        a_animal2=_a(ctx["animal2"]), play_plain=rng.choice(["play", "run", "laugh", "play " + ctx["game"]]),
        grownup_name=grownup.removeprefix("the ").capitalize() if grownup.startswith("the ") else grownup,
    )
    return ctx


def _expand(text: str, ctx: dict[str, str], rng: random.Random, depth: int = 0) -> str:
    """Fill every {slot}: a story-wide choice, else one alternative of a rule, expanded in turn."""
    if depth > 8:
        raise RecursionError(f"story grammar: the rules nest too deeply in {text!r}")

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key in ctx:
            return ctx[key]
        return _expand(rng.choice(_RULES[key]), ctx, rng, depth + 1)

    return _SLOT.sub(fill, text)


def _sentence_case(text: str) -> str:
    """Capitalise the first letter of each sentence ("the teacher" starting one, say); not
    after a closing quote, where "he said" goes on the same sentence."""
    # "We can do it." Tom said -> "We can do it," Tom said
    text = re.sub(r'\." (?=(?:\w+ ){1,2}(?:said|called|whispered|shouted|cried|asked)\b)', '," ', text)
    return re.sub(r'(^|[.!?] )([a-z])', lambda m: m.group(1) + m.group(2).upper(), text)


STORY_SHAPES = tuple(_SHAPES)
"""The names of the plots the grammar writes."""


def write_story(rng: random.Random, shape: str | None = None) -> tuple[str, str]:
    """(shape, story): one story of the given shape (else a random one), drawn from `rng`.
    The first two sentences form the first paragraph, the rest the second, as in TinyStories."""
    if shape is None:
        shape = rng.choice(STORY_SHAPES)
    elif shape not in _SHAPES:
        raise ValueError(f"write_story: unknown story shape {shape!r}; the shapes are {', '.join(STORY_SHAPES)}")
    ctx = _cast(rng)
    sentences = [_sentence_case(_expand(rng.choice(beat), ctx, rng)) for beat in _SHAPES[shape]]
    return shape, " ".join(sentences[:2]) + "\n" + " ".join(sentences[2:])
