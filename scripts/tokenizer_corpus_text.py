"""The hand-written text pools of the tokenizer test corpus (scripts/make_tokenizer_corpus.py).

Kept apart from the generator so that the generator reads as a list of steps. Every string was written
for this corpus; the order of each list matters, since the generator draws from them with a fixed seed.
"""

ASCII = [
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "A small model was fine-tuned on a single GPU overnight.",
    "Please summarize the following article in three sentences.",
    "What is the capital of Australia?",
    "It was the best of runs, it was the worst of runs.",
    "Tokenizers split text into pieces that a model can read.",
    "She sells sea shells by the sea shore.",
    "I think, therefore I am.",
    "Write a haiku about autumn leaves.",
    "The loss went down from 2.31 to 1.07 after 500 steps.",
    "Learning rate warmup helps stabilize early training.",
    "Can you explain what a LoRA adapter is?",
    "Set the batch size to 8 and gradient accumulation to 4.",
    "He said: \"no way\" and left.",
    "Use 'single quotes' and \"double quotes\" together.",
    "This sentence has a semicolon; and a colon: here.",
    "Numbers like 42 and 7 appear in text.",
    "UPPERCASE WORDS ARE SHOUTING",
    "lowercase words are whispering",
    "MiXeD CaSe WoRdS",
    "camelCaseIdentifier and snake_case_identifier and kebab-case-identifier",
    "The end.",
    "a",
    "I",
    "x y z",
    "ok",
    "Yes.",
    "No!",
    "Why?",
    "Thanks a lot :)",
    "e.g. i.e. etc. vs. Mr. Mrs. Dr.",
    "The year 2024 had 366 days.",
    "Call me at 555-0100 tomorrow.",
    "Version v1.2.3-rc.4 was released.",
    "C'est la vie, as they say.",
    "Rock 'n' roll",
    "the cat sat on the mat",
    "Once upon a time there was a tokenizer that loved bytes.",
]

CONTRACTIONS = [
    "don't", "Don't", "DON'T", "I'LL", "I'll", "i'll", "we've", "We've", "WE'VE", "they're", "THEY'RE",
    "she's", "He'S", "I'm", "I'M", "you'd", "YOU'D", "can't", "won't", "isn't", "it's", "It's", "o'clock",
    "y'all", "'tis", "rock'n'roll", "don't you think it's fine? I'd say we'll see.",
    "I'VE BEEN THERE, YOU'LL SEE, SHE'D KNOW.",
    "don\u2019t (curly apostrophe)", "it\u2019s", "' s", "'s", "''", "'", "'''",
]

LATIN_PRECOMPOSED = [
    "caf\u00e9", "na\u00efve", "r\u00e9sum\u00e9", "Se\u00f1or", "\u00fcber", "Stra\u00dfe", "\u00e0 la carte",
    "co\u00f6perate", "fa\u00e7ade", "jalape\u00f1o", "\u00c5ngstr\u00f6m", "\u00d8resund", "\u0141\u00f3d\u017a",
    "\u010cesk\u00e1 republika", "Ti\u1ebfng Vi\u1ec7t", "\u00c9COLE", "\u00bfQu\u00e9 tal?", "\u00a1Hola!",
]

# The same words with decomposed combining marks (NFD-style).
LATIN_DECOMPOSED = [
    "cafe\u0301", "nai\u0308ve", "re\u0301sume\u0301", "Sen\u0303or", "u\u0308ber", "a\u0300 la carte",
    "fac\u0327ade", "jalapen\u0303o", "A\u030angstro\u0308m", "C\u030ceska\u0301 republika",
    "Tie\u0302\u0301ng Vie\u0323\u0302t", "E\u0301COLE", "e\u0301", "e\u0301e\u0301e\u0301",
    "a\u0301\u0302\u0303\u0304\u0308", "Z\u0335\u0321a\u0336l\u0337g\u0338o\u0334", "n\u0303", "o\u0308\u0304",
]

EUROPEAN = [
    "Guten Morgen! Wie geht es dir heute?",
    "Die Donaudampfschifffahrtsgesellschaft ist ein langes Wort.",
    "Sch\u00f6ne Gr\u00fc\u00dfe aus M\u00fcnchen.",
    "\u00c4rger, \u00d6l und \u00dcbel \u2014 gro\u00dfe Buchstaben mit Umlauten.",
    "Bonjour, comment allez-vous ?",
    "L'\u00e9t\u00e9 dernier, nous sommes all\u00e9s \u00e0 la plage.",
    "Il fait tr\u00e8s beau aujourd'hui, n'est-ce pas ?",
    "\u00ab Les guillemets fran\u00e7ais \u00bb sont diff\u00e9rents.",
    "\u00bfD\u00f3nde est\u00e1 la biblioteca?",
    "El ni\u00f1o comi\u00f3 una manzana y un pl\u00e1tano.",
    "Ma\u00f1ana ser\u00e1 otro d\u00eda.",
    "Portugu\u00eas: n\u00e3o, cora\u00e7\u00e3o, informa\u00e7\u00e3o.",
    "Italiano: perch\u00e9 cos\u00ec citt\u00e0.",
    "Polski: Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144.",
    "T\u00fcrk\u00e7e: \u0130stanbul, \u0131\u015f\u0131k, \u00e7ay.",
    "Svenska: \u00c5sa \u00e4ter \u00e4pplen p\u00e5 \u00f6n.",
]

SCRIPTS = {
    "cyrillic": [
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
        "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430 \u0420\u043e\u0441\u0441\u0438\u0438.",
        "\u042f \u043b\u044e\u0431\u043b\u044e \u0447\u0438\u0442\u0430\u0442\u044c \u043a\u043d\u0438\u0433\u0438 \u043f\u043e \u0432\u0435\u0447\u0435\u0440\u0430\u043c.",
        "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u043c\u043e\u0432\u0430: \u0457\u0436\u0430\u043a, \u0491\u0430\u043d\u043e\u043a.",
        "\u0411\u042a\u041b\u0413\u0410\u0420\u0421\u041a\u0418 \u0415\u0417\u0418\u041a",
    ],
    "greek": [
        "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5, \u03ba\u03cc\u03c3\u03bc\u03b5!",
        "\u0397 \u0391\u03b8\u03ae\u03bd\u03b1 \u03b5\u03af\u03bd\u03b1\u03b9 \u03c0\u03b1\u03bb\u03b9\u03ac \u03c0\u03cc\u03bb\u03b7.",
        "\u03b1\u03b2\u03b3\u03b4\u03b5 \u0391\u0392\u0393\u0394\u0395 \u03c0 \u2248 3.14",
        "\u1f08\u03c1\u03c7\u1f74 \u1f25\u03bc\u03b9\u03c3\u03c5 \u03c0\u03b1\u03bd\u03c4\u03cc\u03c2",
    ],
    "arabic": [
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
        "\u0627\u0644\u0644\u063a\u0629 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u062c\u0645\u064a\u0644\u0629 \u062c\u062f\u0627.",
        "\u0643\u064e\u062a\u064e\u0628\u064e \u0627\u0644\u0637\u0651\u064e\u0627\u0644\u0650\u0628\u064f \u0627\u0644\u062f\u0651\u064e\u0631\u0652\u0633\u064e",
        "\u0627\u0644\u0639\u062f\u062f \u0661\u0662\u0663 \u0648 123",
    ],
    "hebrew": [
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
        "\u05d0\u05e0\u05d9 \u05d0\u05d5\u05d4\u05d1 \u05dc\u05dc\u05de\u05d5\u05d3 \u05e9\u05e4\u05d5\u05ea \u05d7\u05d3\u05e9\u05d5\u05ea.",
        "\u05e2\u05d1\u05e8\u05d9\u05ea (Hebrew) mixed with English",
    ],
    "hindi": [
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
        "\u092e\u0948\u0902 \u0939\u093f\u0928\u094d\u0926\u0940 \u092c\u094b\u0932\u0924\u093e \u0939\u0942\u0901\u0964",
        "\u092d\u093e\u0930\u0924 \u090f\u0915 \u0935\u093f\u0936\u093e\u0932 \u0926\u0947\u0936 \u0939\u0948\u0964 \u0967\u0968\u0969",
    ],
    "thai": [
        "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01",
        "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07\u0e23\u0e30\u0e2b\u0e27\u0e48\u0e32\u0e07\u0e04\u0e33",
        "\u0e01\u0e23\u0e38\u0e07\u0e40\u0e17\u0e1e\u0e21\u0e2b\u0e32\u0e19\u0e04\u0e23",
    ],
    "chinese": [
        "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
        "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
        "\u673a\u5668\u5b66\u4e60\u6a21\u578b\u9700\u8981\u5927\u91cf\u7684\u6570\u636e\u3002",
        "\u8bf7\u7528\u4e2d\u6587\u56de\u7b54\u8fd9\u4e2a\u95ee\u9898\u3002",
        "\u7e41\u9ad4\u4e2d\u6587\u8207\u7c21\u4f53\u4e2d\u6587",
        "\u4e2d\u6587English\u6df7\u5408123\u6570\u5b57",
    ],
    "japanese": [
        "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
        "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57\u3002",
        "\u6771\u4eac\u30bf\u30ef\u30fc\u306f\u9ad8\u3044\u3067\u3059\u306d\u3002",
        "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85 (half-width katakana)",
        "\u304c\u304e\u3050\u3052\u3054 \u304b\u3099\u304d\u3099",
    ],
    "korean": [
        "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
        "\ud55c\uad6d\uc5b4\ub294 \ud55c\uae00\ub85c \uc501\ub2c8\ub2e4.",
        "\uc624\ub298 \ub0a0\uc528\uac00 \uc815\ub9d0 \uc88b\ub124\uc694!",
        # Decomposed Hangul jamo (NFC composes these into syllables).
        "\u1112\u1161\u11ab\u1100\u1173\u11af",
    ],
}

EMOJI = [
    "\U0001F600", "\U0001F602\U0001F602\U0001F602", "I love it \u2764\ufe0f", "\u2764", "\U0001F44D", "\U0001F44D\U0001F3FD",
    "\U0001F44B\U0001F3FB\U0001F44B\U0001F3FF", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "\U0001F469\U0001F3FE\u200d\U0001F4BB coding", "\U0001F3F3\ufe0f\u200d\U0001F308",
    "\U0001F1E9\U0001F1EA\U0001F1EF\U0001F1F5\U0001F1FA\U0001F1F8",
    "flags: \U0001F1EB\U0001F1F7 \U0001F1EC\U0001F1E7 \U0001F1E7\U0001F1F7", "1\ufe0f\u20e3 2\ufe0f\u20e3 #\ufe0f\u20e3",
    "\U0001F680 launch in 3... 2... 1...", "good morning \u2600\ufe0f\U0001F305", "\U0001F9D1\u200d\U0001F91D\u200d\U0001F9D1",
    "\U0001F436\U0001F431\U0001F42D\U0001F439\U0001F430",
    "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
    "emoji\U0001F525glued\U0001F525to\U0001F525words", "\u2705 done \u274c failed \u26a0\ufe0f warning",
]

CODE = [
    "def add(a, b):\n    return a + b\n",
    "import numpy as np\n\nx = np.zeros((3, 4), dtype=np.float32)\nprint(x.shape)",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(f\"even {i}\")\n",
    "class Foo:\n    \"\"\"Docstring.\"\"\"\n    def __init__(self):\n        self._x = None\n",
    "#include <vector>\n\nint main() {\n  std::vector<int> v{1, 2, 3};\n  return v.size() > 2 ? 0 : 1;\n}\n",
    "template <typename T>\nT max(T a, T b) { return a > b ? a : b; }",
    "auto it = m.find(key); if (it != m.end()) { ++it->second; }",
    "ptr->next = nullptr; // reset\n/* block comment */",
    "{\"name\": \"qtune\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"lora\"], \"ok\": true, \"n\": null}",
    "{\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ]\n}",
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>Test</title></head>\n<body><p class=\"x\">Hi &amp; bye</p></body>\n</html>",
    "<div id=\"main\"><a href=\"/path?q=1&r=2\">link</a></div>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "$ git commit -m \"fix: handle CRLF\" && git push origin main",
    "fn main() { println!(\"{}\", 1 + 1); }",
    "const f = (x) => x ** 2; console.log([1,2,3].map(f));",
    "if (a && b || !c) { x += 1; } else { x -= 1; }",
    "    indented with four spaces\n        and eight",
    "\t\ttab indented\n\t\t\tdeeper",
    "x=1;y=2;z=x<<y>>1^0xFF&~0b1010|0o17",
]

URLS = [
    "https://example.com",
    "https://example.com/path/to/page.html?query=1&lang=en#section-2",
    "http://localhost:8080/api/v1/items/42",
    "ftp://files.example.org/pub/readme.txt",
    "Visit www.example.org for more info.",
    "mailto:someone@example.com",
    "user.name+tag@sub.example.co.uk",
    "/usr/local/lib/libfoo.so.1",
    "C:\\Users\\Alice\\Documents\\file.txt",
    "See https://example.com/wiki/Caf%C3%A9_(disambiguation) now.",
]

PUNCTUATION = [
    "!!!", "???", "?!?!", "...", "\u2026", "---", "\u2014\u2014", "***", "###", "___", "~~~", "===",
    "((()))", "[[[]]]", "{{{}}}", "<<>>", "<<<>>>", "@@", "$$$", "%%", "^^", "&&", "||", "\\\\", "//",
    ";;", "::", ",,", "..", "\"\"", "''", "``", "!?.,;:", "-_-", "(\u00ac_\u00ac)", "\u00bf\u00a1", "\u3002\u3001\uff01\uff1f",
    "Wait... what?!", "Hmm\u2026 ok.", "a, b, c; d: e.", "end.\n", "Really??? Yes!!!",
]

RARE = [
    "\ufffd", "a\ufffdb", "zero\u200bwidth", "\u200b", "non\u00a0breaking\u00a0space", "\u00a0", "line\u2028separator",
    "para\u2029separator", "\ufeffBOM at start", "soft\u00adhyphen", "\u200d", "a\u200cb", "\u0085", "vertical\u000btab",
    "form\u000cfeed", "control\u0001chars\u001f", "delete\u007f", "\u3000ideographic space\u3000", "\u2003em space\u2002en space",
    "\u202fnarrow nbsp", "\u2060word joiner", "\U0001D400\U0001D401\U0001D402 math bold", "\uff21\uff22\uff23\uff11\uff12\uff13 full-width",
    "\ufb01le \ufb02ow (ligatures)", "\u216b \u2167 roman", "x\u00b2 + y\u00b3 = z\u2074", "H\u2082O", "\u00bd \u00bc \u00be",
    "\ue000 private use", "\U0010FFFF", "\U0001F9FF\U00010000\U000E0001", "\u2122 \u00a9 \u00ae", "\u20ac 5 \u00a3 3 \u00a5 100 \u20b9 9",
    "\u0301 combining at start", "\U00013000 hieroglyph", "\U0001F3FB lone skin tone", "\U000E0020 tag space",
]

# Special tokens of the first four families of the corpus (sections 1-8 keep exactly this list, so that
# the random draws and thus the lines of those sections stay what they were).
SPECIAL_LIKE = {
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
               "<|reserved_special_token_0|>", "<|reserved_special_token_250|>"],
    "qwen": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_pad|>", "<think>", "</think>", "<tool_call>",
             "</tool_call>", "<|fim_prefix|>"],
    "llama2": ["<s>", "</s>", "<unk>"],
    "gemma": ["<bos>", "<eos>", "<pad>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<mask>"],
}

# Added tokens of the families that came later (section 10): special and non-special ones, including
# gemma3's plain-text added tokens (newline and tab runs, HTML tags, literal "▁▁") and DeepSeek's
# full-width bars.
MORE_SPECIAL = {
    "llama3_1": ["<|reserved_special_token_3|>", "<|reserved_special_token_4|>", "<|reserved_special_token_247|>"],
    "gemma3": ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<unused0>", "<unused6241>", "[multimodal]",
               "<table>", "</td>", "<blockquote>", "\u2581\u2581\u2581", "\t\t\t\t\t", "\n\n\n\n\n\n"],
    "deepseek_v3": ["<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<\uff5c\u2581pad\u2581\uff5c>",
                    "<\uff5cUser\uff5c>", "<\uff5cAssistant\uff5c>", "<|EOT|>", "<\uff5ctool\u2581calls\u2581begin\uff5c>",
                    "<\uff5ctool\u2581sep\uff5c>", "<\uff5cfim\u2581hole\uff5c>", "<\uff5cplace\u2581holder\u2581no\u25810\uff5c>"],
    "gptoss": ["<|startoftext|>", "<|return|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>",
               "<|call|>", "<|endofprompt|>", "<|reserved_200000|>"],
}

NOT_SPECIAL = [
    "<|foo|>", "< s>", "<s >", "<\\s>", "<|eot_id", "eot_id|>", "<|EOT_ID|>", "<<s>>", "<|im_start |>", "< |im_end| >",
    "<start_of_turn", "<|begin_of_text|", "|begin_of_text|>", "<S>", "</S>", "<BOS>", "<|endoftext||>", "<||>", "<|>",
    "<think >", "<thinking>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "### Instruction:",
]

LONG_WORDS = [
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Rindfleischetikettierungs\u00fcberwachungsaufgaben\u00fcbertragungsgesetz",
    "antidisestablishmentarianism",
    "supercalifragilisticexpialidocious",
    "a" * 100,
    "ab" * 60,
    "xyz" * 40 + "!",
    "9" * 200,
    " " * 50 + "end",
    "=" * 80,
    "-" * 120,
    "\U0001F600" * 30,
    "\u6f22" * 60,
    "\u00e9" * 40,
    "e\u0301" * 30,
    "https://example.com/" + "segment/" * 20,
    "ThisIsAVeryLongCamelCaseIdentifierThatKeepsGoingAndGoingForTestingPurposesOnly",
    "\u0e01\u0e32\u0e23" * 25,
    "\ud55c" * 40,
]

WHITESPACE_ONLY = [
    "", " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", " \n", "\n ", " \n ",
    "\t \n", " \t\t  \n", "\r\n \r\n", "\u00a0", "\u00a0 \u00a0", "\u3000", "\u2028", " \u200b ", "\f", "\v", " " * 17,
    "\n" * 12, "\t\n\r\n \t",
]

NUMBERS = [
    "1", "12", "123", "1234", "12345678", "3.14159", "2.718281828459045", "1,000,000", "1.000.000,50", "-42",
    "+7", "1e10", "6.022e23", "0.0001", "1/2", "3/4 cup", "50%", "$19.99", "\u20ac1.234,56", "2024-06-01",
    "12:30:45", "10:00 AM", "v2", "x86_64", "ipv4 192.168.0.1", "0xDEADBEEF", "007", "000000", "1st 2nd 3rd 4th",
    "room 101", "A4 paper", "COVID-19", "Windows 11", "\u0661\u0662\u0663\u0664", "\u0967\u0968\u0969", "\uff11\uff12\uff13",
    "\u2460\u2461\u2462", "one 1 two 2 three 3", "1 2 3 4 5 6 7 8 9 10", "123 456 789", "12345 67890 1234567890",
]

# Fixed texts of section 5: whole chat prompts of several formats.
CHAT_SNIPPETS = [
    "hi<|eot_id|>there",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<s>x</s>",
    "<s> x </s>",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "<|begin_of_text|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<|endoftext|><|endoftext|>",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "text <unk> text",
]

# Section 10's whole prompts in the later families' formats.
MORE_CHAT_SNIPPETS = [
    "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>run()<|eom_id|>",
    "<bos><start_of_turn>user\n<start_of_image><image_soft_token><end_of_image> What is this?<end_of_turn>\n<start_of_turn>model\n",
    "<\uff5cbegin\u2581of\u2581sentence\uff5c>You are terse.<\uff5cUser\uff5c>Hi<\uff5cAssistant\uff5c>Hello!<\uff5cend\u2581of\u2581sentence\uff5c>",
    "<\uff5cUser\uff5c>Weather?<\uff5cAssistant\uff5c><\uff5ctool\u2581calls\u2581begin\uff5c><\uff5ctool\u2581call\u2581begin\uff5c>function"
    "<\uff5ctool\u2581sep\uff5c>get\n```json\n{}\n```<\uff5ctool\u2581call\u2581end\uff5c><\uff5ctool\u2581calls\u2581end\uff5c>",
    "<|start|>system<|message|>You are ChatGPT.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello<|return|>",
    "<|start|>assistant<|channel|>commentary to=functions.get <|constrain|>json<|message|>{}<|call|>",
    "<table><tr><td>1</td><td>2</td></tr></table>",
    "<h1>Title</h1>\n\n\n<p>text</p>\t\t<b>bold</b>",
    "a\u2581\u2581b \u2581 \u2581\u2581\u2581 c",
    "<|EOT|> and <\uff5cUser\uff5c> and <|User|>",
]

# U+0085 (NEL) and U+FEFF (BOM, ZWNBSP): HF tokenizers (Oniguruma \s = Unicode White_Space) treats NEL as
# whitespace and BOM as not; these cover every place a split regex looks at whitespace.
NEL_BOM = [
    "\u0085\u0085", " \u0085", "\u0085 ", "a\u0085b", "a \u0085b", "a\u0085 b", "a \u0085 b", "a  \u0085  b",
    "word\u0085\u0085word", "end\u0085", "\u0085start", "x\u0085\ny", "x\n\u0085y", "x\r\n\u0085\r\ny", "\t\u0085\t",
    "12\u008534", "!\u0085?", "\u4e2d\u0085\u6587", "caf\u00e9\u0085na\u00efve", "don't\u0085it's", "I\u0085'll",
    "\u0085\u00a0\u3000\u2028", "line one\u0085line two\u0085line three",
    "\ufeff", "\ufeff\ufeff", " \ufeff", "\ufeff ", "a\ufeffb", "a \ufeffb", "a\ufeff b", "Hello\ufeff world",
    "\ufeff\ufeffdouble BOM", "line\n\ufeff\n", "12\ufeff34", "!\ufeff?", "\ufeff<|eot_id|>\ufeff", "\u0085\ufeff",
    "\ufeff\u0085", " \ufeff\u0085 ", "\ufeff\u4e2d\u6587", "\ufeff'll", "tab\t\ufeff\tsep",
]

# U+180E MONGOLIAN VOWEL SEPARATOR: white space before Unicode 6.3, a format character since; HF's \s
# (Unicode White_Space) leaves it out.
MONGOLIAN_VOWEL_SEPARATOR = [
    "\u180e", "  \u180e", "     \u180eX", "a\u180e b", "a \u180e b", "-\u180e'd-", "x\u180e\ny", "\u180e\u180e  \u180e",
]

# Letters, digits, marks and symbols assigned in Unicode 15.0-16.0 (PCRE2 10.42 knows 14.0, HF's
# Oniguruma 16.0), alone and where a split regex looks at their class: after spaces and punctuation, in
# digit runs, next to CJK.
NEWER_UNICODE = [
    "\U0002EBF0\U0002EBF1\U0002EBF2",  # CJK Unified Ideographs Extension I (15.1)
    "\u4e2d\U00031350\u6587 \U00031351",  # Extension H (15.0) between CJK
    "\U000105C0\U000105C1\U000105C2 Todhri", " \U000105C0x", "'s\U000105C0",  # Todhri letters (16.0)
    "Garay \U00010D50\U00010D70\U00010D51 \U00010D40\U00010D41\U00010D42\U00010D43",  # Garay letters and digits (16.0)
    "12\U0001E4F1\U0001E4F2\U0001E4F33", "\U0001E4F0\U0001E4F1",  # Nag Mundari digits (15.0)
    "\U00011F04\U00011F05 Kawi", "x\u0CF3y", "\u0897a", "\U0001171E\U00011700",  # Kawi, Kannada/Arabic marks
    "  \U00014246 hieroglyph", "-\U00014246'd", "\U0001CC00 \U0001CC01!", "\u2428 \u2429", "ok\U0001FAE9",  # symbols
    "a  \U000105C0  b", "\U00010D6E. \U00010D8E?",
]

# Code points the random section draws from besides plain letters: whitespace of every kind, controls,
# marks, format characters and the two above.
FUZZ_SPECIAL_CHARS = [
    "\u0085", "\ufeff", "\u00a0", "\u2028", "\u2029", "\u3000", "\u200b", "\u200d", "\u2060", "\u00ad", "\u1680",
    "\u2000", "\u205f", "\u180e", "\u0000", "\u0008", "\u000b", "\u000c", "\u001c", "\u001f", "\u007f", "\u0301",
    "\u0308", "\u0327", "\u3099", "\ufe0f", "\U000E0020", "\ufffd", "\u2581", "'",
]
