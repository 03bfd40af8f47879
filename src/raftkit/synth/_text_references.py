"""Phrasings that refer to a question's source instead of naming its subject.

"What does the text say about bats?" only makes sense beside the chunk it was written from; a
student never sees that chunk when it is asked. These patterns catch such references in the
languages of :data:`TEXT_REFERENCE_LANGUAGES` — English, Chinese (simplified and traditional),
Japanese, Korean, German, French, Spanish, Portuguese and Italian — and avoid the common false
friends: "in the context of", 日本文化 (which contains 本文), 中文中 (文中), 这段时间 ("this
period", not "this passage").
"""

from __future__ import annotations

import re

__all__ = ["TEXT_REFERENCE_LANGUAGES", "find_text_reference"]

#: Languages whose "the text / this passage" phrasings the filter knows.
TEXT_REFERENCE_LANGUAGES: tuple[str, ...] = ("en", "zh", "ja", "ko", "de", "fr", "es", "pt", "it")

_EN_CORE = r"(?:text|passage|chunk|excerpt|snippet|extract|document|paragraph)s?"
_EN_OTHER = r"(?:context|article|section|source|material|reading)s?"
_EN_DETERMINER = (
    r"(?:this|that|these|those|the\s+(?:given|provided|above|following|preceding|previous"
    r"|original|accompanying|same))"
)
_ZH_NOUN = r"(?:文章|文本|文字|段落|材料|资料|資料|文档|文檔|文件|片段|摘录|摘錄|内容|內容)"
_TEXT_REFERENCES = re.compile(
    "|".join(
        [
            # English
            rf"\b(?:the|this|that|these|those)\s+{_EN_CORE}\b",
            rf"\b{_EN_DETERMINER}\s+(?:{_EN_CORE}|{_EN_OTHER})\b",
            r"\b(?:mentioned|described|stated|discussed|presented|listed|shown|given)\s+"
            r"(?:above|below|here|earlier)\b",
            r"\bthe\s+above\b",
            # Chinese (simplified and traditional)
            r"(?<![日基课課])本文",
            r"(?<![中英日法德韩韓外语語])文中",
            r"原文|上文|下文|文本中|文章中|段落中",
            rf"(?:该|該|此|这|這|本|上述|以上|所给|所給|给定|給定)(?:篇|段|份|个|個)?{_ZH_NOUN}",
            r"根[据據](?:文章|文本|材料|上文|段落|文档|文檔|原文|资料|資料|本文)",
            # Japanese
            r"この(?:文章|段落|テキスト|文書|資料|記事|一節|抜粋)|上記の?(?:文章|内容|文書)",
            r"(?:文章|テキスト|本文)によると|本稿",
            # Korean
            r"이\s*(?:글(?![자씨])|문서|문단|단락|텍스트|지문|본문|자료|기사)",
            r"본문|위\s*(?:글|문서|문단|내용|지문)|(?:글|문서|지문)에\s*(?:따르면|의하면)",
            # German
            r"\b(?:der|dem|den|des|diese[mnrs]?|im|vom|laut|gemäß)\s+(?:(?:obigen|vorliegenden|"
            r"gegebenen|folgenden)\s+)?(?:Text(?:es|s)?|Dokument(?:s|es)?|Abschnitt(?:s|es)?|"
            r"Absatz(?:es)?|Passage|Auszug(?:s|es)?)\b",
            # French
            r"\b(?:le|ce|cet|cette|du|au|dans\s+le|selon\s+le|d'après\s+le)\s+(?:texte|document|"
            r"passage|extrait|paragraphe)s?\b|\bl['’]extrait\b",
            # Spanish
            r"\b(?:el|este|esta|del|al|según\s+el|en\s+el)\s+(?:texto|documento|pasaje|fragmento|"
            r"párrafo|extracto)s?\b",
            # Portuguese
            r"\b(?:o|este|esta|do|no|segundo\s+o)\s+(?:texto|documento|trecho|passagem|parágrafo|"
            r"excerto)s?\b",
            # Italian
            r"\b(?:il|questo|questa|del|nel|secondo\s+il)\s+(?:testo|documento|brano|passaggio|"
            r"paragrafo|estratto)s?\b",
        ]
    ),
    re.IGNORECASE,
)


def find_text_reference(text: str) -> str | None:
    """The first phrase of ``text`` that refers to its source, or ``None``."""
    found = _TEXT_REFERENCES.search(text)
    return found.group(0) if found else None
