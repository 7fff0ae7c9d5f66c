"""Sections 13-18 of the tokenizer test corpus (scripts/make_tokenizer_corpus.py): text in the shapes of the
datasets qtune fine-tunes on, so the parity checks see what training sees.

Alpaca records (instruction/input/output and the full prompt), ShareGPT and OpenAI-messages conversations
(turn texts and whole JSONL lines), code in a dozen languages, GSM8K- and MATH-style math with LaTeX,
sentences in twenty languages, markdown tables, lists, URLs, numbers and whitespace runs. Every string was
written for this corpus (no dataset is copied); slots are filled with the corpus' fixed-seed generator, so
the order of every list and every draw matters.
"""
import json

ALPACA_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
ALPACA_PREAMBLE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                         "Write a response that appropriately completes the request.")

TOPICS = ["photosynthesis", "the French Revolution", "black holes", "compound interest", "the water cycle", "neural networks",
          "climate change", "the Roman Empire", "vaccines", "blockchain", "the stock market", "plate tectonics", "jazz music",
          "renewable energy", "the human heart", "quantum computing", "the Silk Road", "sleep hygiene", "inflation",
          "machine translation", "coral reefs", "the printing press", "gradient descent", "volcanoes", "honeybees"]

INSTRUCTIONS = [
    "Explain {topic} to a {age}-year-old.", "Write a short poem about {topic}.", "Give three facts about {topic}.",
    "Summarize the following text in {n} sentences.", "Classify the sentiment of this review as positive, negative or neutral.",
    "Translate the sentence below into {language}.", "Rewrite the following sentence in the passive voice.",
    "What are the main causes of {topic}?", "List {n} pros and cons of {topic}.", "Generate a title for an article about {topic}.",
    "Correct the grammar in the text below.", "Write a Python function that {task}.", "Convert {value} {unit_a} to {unit_b}.",
    "Describe {topic} in one paragraph.", "Create a multiple-choice question about {topic}.", "Extract all the dates from the text.",
    "Find the odd one out: {items}.", "Suggest {n} names for a {thing}.", "Write an email asking my manager for {request}.",
    "Is the following statement true or false? {claim}", "Arrange these words into a sentence: {items}.",
    "Compare {topic} and {topic2}.", "Give me a recipe that uses {items}.", "Write a tweet announcing {event}.",
    "What is the difference between {word_a} and {word_b}?", "Explain the code below line by line.",
]
AGES = ["5", "7", "10", "12", "15"]
LANGUAGES = ["French", "German", "Spanish", "Japanese", "Chinese", "Arabic", "Hindi", "Russian", "Korean", "Portuguese"]
TASKS = ["reverses a string", "checks whether a number is prime", "merges two sorted lists", "counts the words in a file",
         "returns the n-th Fibonacci number", "removes duplicates from a list", "parses a date in ISO format"]
UNITS = [("kilometers", "miles"), ("Celsius", "Fahrenheit"), ("pounds", "kilograms"), ("liters", "gallons"), ("inches", "centimeters")]
ITEMS = ["apple, banana, carrot, cherry", "eggs, flour, sugar, butter", "red, blue, seven, green", "cat, dog, table, horse",
         "quickly, the, ran, dog, home", "rice, chickpeas, spinach, garlic", "Mars, Venus, Moon, Jupiter"]
THINGS = ["coffee shop", "pet hamster", "startup that sells socks", "podcast about history", "hiking club", "bakery"]
REQUESTS = ["a day off next Friday", "a budget for new laptops", "feedback on my report", "permission to work remotely"]
CLAIMS = ["The Great Wall of China is visible from the Moon with the naked eye.", "Water boils at 100 degrees Celsius at sea level.",
          "Bats are blind.", "Light from the Sun takes about eight minutes to reach Earth."]
EVENTS = ["our new app release", "a charity run on Saturday", "the opening of our second store", "version 2.0 of the library"]
WORD_PAIRS = [("affect", "effect"), ("weather", "climate"), ("latency", "throughput"), ("bias", "variance"), ("its", "it's")]

INPUTS = [
    "The restaurant was crowded, the food arrived cold, and the waiter forgot our drinks twice.",
    "I absolutely loved this phone: the battery lasts two days and the camera is superb!",
    "The committee will meet on March 3, 2024 and again on 2024-04-17 to review the budget.",
    "their going to the libary tomorow becuase they needs books",
    "The cat chased the mouse across the kitchen.",
    "Researchers found that students who slept at least eight hours scored 12% higher on memory tests.",
    "def f(x):\n    return [i * i for i in range(x) if i % 2]",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "Le chat est sur la table.",
    "Das Wetter ist heute sehr schön.",
    "The meeting has been moved from 3 pm to 4:30 pm on Thursday.",
    "Our quarterly revenue grew from $1.2M to $1.5M, an increase of 25%.",
]

RESPONSE_SENTENCES = [
    "Sure! Here is a short explanation.", "Of course.", "Great question!", "Here are a few ideas:",
    "The main idea is simple.", "In short, it depends on the context.", "Let's break it down step by step.",
    "First, consider the inputs.", "Second, look at how they change over time.", "Finally, compare the results.",
    "This is why the effect is so strong.", "Many people find this surprising.", "The answer is yes, with one caveat.",
    "I hope this helps!", "Let me know if you have any other questions.", "Here is the corrected version:",
    "Overall, the review is negative.", "The sentiment is positive.", "Note that this only works for positive integers.",
    "The time complexity is O(n log n).", "It was first described in 1905.", "Think of it like a river that never stops flowing.",
    "Plants use sunlight, water and carbon dioxide to make sugar and oxygen.",
    "Interest is added to the principal, so next year you earn interest on the interest too.",
    "A black hole is a region where gravity is so strong that not even light can escape.",
    "The output should be a single word.", "Both terms are often confused, but they mean different things.",
    "As of my knowledge cutoff, that is the most recent figure.", "I'm sorry, but I can't help with that request.",
    "Here's a version that keeps the original meaning:", "To be honest, there is no single right answer.",
]

OPENERS = [
    "hi", "Hello!", "hey, quick question", "Can you help me with my homework?", "I need advice about my resume.",
    "What's a good name for a golden retriever?", "why is the sky blue", "How do I center a div in CSS?",
    "My Python script throws `KeyError: 'id'`. What does that mean?", "Tell me a fun fact.",
    "Write a limerick about a programmer.", "What should I cook tonight? I have rice, eggs and spinach.",
    "Explain recursion like I'm five.", "How many days until Christmas if today is December 3?",
    "Can you recommend a book similar to Dune?", "I feel stressed about exams. Any tips?",
    "What's the difference between a list and a tuple in Python?", "Translate 'good morning' into Japanese.",
    "Is it safe to eat raw cookie dough?", "How does git rebase work?", "Plan a 3-day trip to Lisbon for me.",
    "¿Puedes ayudarme a escribir una carta?", "Bonjour ! Comment vas-tu ?", "你好，请介绍一下你自己。",
    "こんにちは！おすすめの映画はありますか？", "Привет! Как дела?", "مرحبا، كيف يمكنني تعلم البرمجة؟",
    "नमस्ते, क्या आप मेरी मदद कर सकते हैं?", "안녕하세요, 오늘 날씨 어때요?",
]
FOLLOW_UPS = [
    "Thanks! Can you make it shorter?", "Why?", "Can you give an example?", "ok", "What about in JavaScript?",
    "That didn't work, I still get the same error.", "Perfect, thank you!!", "Could you explain the second step again?",
    "Make it funnier 😂", "And if I only have two days?", "Can you put that in a table?", "Please answer in French.",
    "hmm, are you sure?", "What are the sources for that?", "Great, now write a test for it.",
]
SYSTEM_PROMPTS = [
    "You are a helpful assistant.", "You are a friendly tutor who explains things simply.",
    "You are an expert software engineer. Answer with code when useful.", "Always answer in fewer than 50 words.",
    "You are ChatBot, a large language model. Knowledge cutoff: 2023-10. Current date: 2024-05-01.",
    "Respond only in JSON.", "You are a pirate. Talk like one.",
]

CODE_TEMPLATES = {
    "python": [
        "def {f}({a}, {b}={n}):\n    \"\"\"Return the {w} of {a} and {b}.\"\"\"\n    if {a} is None:\n        raise ValueError(\"{a} must not be None\")\n    return {a} * {b} + {m}\n",
        "import json\nfrom pathlib import Path\n\n\ndef load_{w}(path: Path) -> dict:\n    with path.open(encoding=\"utf-8\") as f:\n        return json.load(f)\n",
        "class {C}:\n    def __init__(self, {a}: int = {n}) -> None:\n        self.{a} = {a}\n\n    def __repr__(self) -> str:\n        return f\"{C}({a}={{self.{a}!r}})\"\n",
        "for {a} in range({n}):\n    if {a} % {m} == 0:\n        print(f\"{{{a}:>4}} is divisible by {m}\")\n    else:\n        continue\n",
        "{a} = [x ** 2 for x in range({n}) if x % {m} == 0]\n{b} = {{k: v for k, v in zip({a}, {a}[1:])}}\nprint(len({b}))",
        "@pytest.mark.parametrize(\"{a}\", [{n}, {m}, -1])\ndef test_{f}({a}):\n    assert {f}({a}) >= 0\n",
    ],
    "javascript": [
        "function {f}({a}, {b}) {{\n  if (!{a}) return null;\n  return {a}.map((x) => x * {b}).filter(Boolean);\n}}\n",
        "const {a} = await fetch(`https://api.example.com/v{m}/{w}?limit=${{{n}}}`);\nconst data = await {a}.json();\nconsole.log(data.items.length);",
        "export default class {C} extends React.Component {{\n  render() {{\n    return <div className=\"{w}\">{{this.props.{a}}}</div>;\n  }}\n}}\n",
        "document.querySelectorAll('.{w}').forEach(el => {{\n\tel.addEventListener('click', () => el.classList.toggle('active'));\n}});",
    ],
    "typescript": [
        "interface {C} {{\n  {a}: number;\n  {b}?: string | null;\n  readonly tags: string[];\n}}\n\nexport function {f}(x: {C}): boolean {{\n  return x.{a} > {n};\n}}\n",
        "type {C}<T> = {{ ok: true; value: T }} | {{ ok: false; error: Error }};\nconst {a}: {C}<number> = {{ ok: true, value: {n} }};",
    ],
    "c": [
        "#include <stdio.h>\n#include <stdlib.h>\n\nint {f}(const int *{a}, size_t {b}) {{\n    int sum = 0;\n    for (size_t i = 0; i < {b}; ++i) sum += {a}[i];\n    return sum;\n}}\n",
        "typedef struct {{\n    uint32_t {a};\n    float {b}[{n}];\n}} {C};\n\n#define {W}_MAX {m}\n",
    ],
    "cpp": [
        "template <typename T>\nstd::vector<T> {f}(const std::vector<T>& {a}, T {b}) {{\n  std::vector<T> out;\n  std::copy_if({a}.begin(), {a}.end(), std::back_inserter(out), [&](T x) {{ return x > {b}; }});\n  return out;\n}}\n",
        "auto {a} = std::make_unique<{C}>({n});\nfor (const auto& [key, value] : {b}) {{\n  std::cout << key << \" -> \" << value << '\\n';\n}}",
    ],
    "rust": [
        "fn {f}({a}: &[i64]) -> Option<i64> {{\n    {a}.iter().copied().filter(|x| x % {m} == 0).max()\n}}\n",
        "#[derive(Debug, Clone, PartialEq)]\npub struct {C} {{\n    pub {a}: u32,\n    pub {b}: String,\n}}\n\nimpl {C} {{\n    pub fn new({a}: u32) -> Self {{\n        Self {{ {a}, {b}: String::new() }}\n    }}\n}}\n",
    ],
    "go": [
        "func {f}({a} []int, {b} int) (int, error) {{\n\tif len({a}) == 0 {{\n\t\treturn 0, errors.New(\"empty {w}\")\n\t}}\n\treturn {a}[0] + {b}, nil\n}}\n",
        "package main\n\nimport \"fmt\"\n\nfunc main() {{\n\t{a} := map[string]int{{\"{w}\": {n}}}\n\tfmt.Printf(\"%v\\n\", {a})\n}}\n",
    ],
    "java": [
        "public class {C} {{\n    private final int {a};\n\n    public {C}(int {a}) {{\n        this.{a} = {a};\n    }}\n\n    @Override\n    public String toString() {{\n        return \"{C}{{\" + {a} + \"}}\";\n    }}\n}}\n",
        "List<String> {a} = Stream.of(\"{w}\", \"{f}\").map(String::toUpperCase).collect(Collectors.toList());",
    ],
    "sql": [
        "SELECT u.id, u.{a}, COUNT(o.id) AS orders\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\nWHERE u.created_at >= '2023-0{m}-01'\nGROUP BY u.id, u.{a}\nORDER BY orders DESC\nLIMIT {n};",
        "CREATE TABLE {w} (\n  id SERIAL PRIMARY KEY,\n  {a} VARCHAR({n}) NOT NULL,\n  {b} NUMERIC(10, 2) DEFAULT 0.0\n);",
    ],
    "bash": [
        "#!/usr/bin/env bash\nset -euo pipefail\nfor f in ./{w}/*.txt; do\n  wc -l \"$f\" | awk '{{print $1}}'\ndone\n",
        "pip install -U {w}=={m}.{n}.0 && python -m {w} --{a} {n} 2>&1 | tee log.txt",
        "docker run --rm -it -v \"$PWD\":/app -p {n}:80 {w}:latest",
    ],
    "html": [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n  <meta charset=\"utf-8\">\n  <title>{C}</title>\n</head>\n<body>\n  <div id=\"{a}\" class=\"{w}\">&nbsp;&copy; 2024</div>\n</body>\n</html>\n",
        ".{w} {{\n  display: flex;\n  margin: 0 auto;\n  padding: {n}px {m}px;\n  color: #{n}a{m}f0;\n}}\n",
    ],
    "yaml": [
        "base_model: meta-llama/Meta-Llama-3-8B\nload_in_4bit: true\nadapter: qlora\nlora_r: {n}\nlora_alpha: {m}\ndatasets:\n  - path: data/{w}.jsonl\n    type: alpaca\nlearning_rate: 2e-4\n",
        "{{\n  \"{a}\": {n},\n  \"{b}\": [\"{w}\", null, true, -{m}.5e-3],\n  \"nested\": {{\"key\": \"value\"}}\n}}",
    ],
}
CODE_NAMES = ["compute", "parse_input", "load_data", "merge", "normalize", "find_max", "tokenize", "handle_request", "to_json",
              "validate", "train_step", "get_user"]
VAR_NAMES = ["items", "count", "value", "total", "buf", "user_id", "nums", "config", "result", "idx", "width", "scores"]
CLASS_NAMES = ["Parser", "UserProfile", "Matrix", "HttpClient", "Point3D", "TokenBuffer", "Inventory", "Config"]
WORDS = ["product", "sum", "config", "users", "metrics", "settings", "cache", "report", "orders", "logs"]

GSM_TEMPLATES = [
    ("{name} has {a} apples. She buys {b} more bags with {c} apples in each bag. How many apples does she have now?",
     "{name} buys {b} * {c} = <<{b}*{c}={bc}>>{bc} apples.\nSo she has {a} + {bc} = <<{a}+{bc}={r1}>>{r1} apples.\n#### {r1}"),
    ("A train travels at {a} km/h for {b} hours and then at {c} km/h for 2 hours. How far does it travel in total?",
     "First part: {a} * {b} = <<{a}*{b}={ab}>>{ab} km.\nSecond part: {c} * 2 = <<{c}*2={c2}>>{c2} km.\nTotal: {ab} + {c2} = <<{ab}+{c2}={r2}>>{r2} km.\n#### {r2}"),
    ("{name} earns ${a} per hour. Last week {name} worked {b} hours and spent ${c} on groceries. How much money is left?",
     "{name} earned {a} * {b} = $<<{a}*{b}={ab}>>{ab}.\nAfter groceries: {ab} - {c} = $<<{ab}-{c}={r3}>>{r3}.\n#### {r3}"),
    ("A classroom has {a} rows of desks with {b} desks in each row. If {c} desks are empty, how many students are there?",
     "There are {a} x {b} = <<{a}*{b}={ab}>>{ab} desks.\nStudents: {ab} - {c} = <<{ab}-{c}={r3}>>{r3}.\n#### {r3}"),
]
NAMES = ["Maria", "Aiko", "Fatima", "Olga", "Priya", "Chen", "Lucas", "Amara", "Sven", "Noah"]
LATEX_TEMPLATES = [
    ("Solve for $x$: $x^2 - {s}x + {p} = 0$.",
     "We factor: $x^2 - {s}x + {p} = (x - {r})(x - {q})$, so $x = {r}$ or $x = {q}$. The sum of the roots is $\\boxed{{{s}}}$."),
    ("Compute $\\displaystyle\\sum_{{k=1}}^{{{a}}} k$.", "Using $\\sum_{{k=1}}^{{n}} k = \\frac{{n(n+1)}}{{2}}$, we get $\\frac{{{a} \\cdot {a1}}}{{2}} = \\boxed{{{tri}}}$."),
    ("What is $\\frac{{{a}}}{{{b}}} + \\frac{{1}}{{{b}}}$?", "$$\\frac{{{a}}}{{{b}}} + \\frac{{1}}{{{b}}} = \\frac{{{a1}}}{{{b}}}.$$\nThe answer is $\\boxed{{\\frac{{{a1}}}{{{b}}}}}$."),
    ("Evaluate $\\int_0^{{{a}}} {b}x\\,dx$.", "\\begin{{align*}}\n\\int_0^{{{a}}} {b}x\\,dx &= \\left[\\tfrac{{{b}}}{{2}}x^2\\right]_0^{{{a}}} \\\\\n&= \\tfrac{{{b}}}{{2}} \\cdot {aa} = {half}.\n\\end{{align*}}"),
    ("Let $f(x) = {a}x + {b}$. Find $f^{{-1}}({c})$.", "If $y = {a}x + {b}$ then $x = \\frac{{y - {b}}}{{{a}}}$, so $f^{{-1}}({c}) = \\frac{{{c} - {b}}}{{{a}}}$."),
    ("Prove that $\\sqrt{{2}}$ is irrational.", "Suppose $\\sqrt{{2}} = \\frac{{p}}{{q}}$ with $\\gcd(p, q) = 1$. Then $p^2 = 2q^2$, so $2 \\mid p$; write $p = 2r$. Then $q^2 = 2r^2$ and $2 \\mid q$, a contradiction. $\\blacksquare$"),
    ("Find the determinant of $\\begin{{pmatrix}} {a} & {b} \\\\ {c} & 1 \\end{{pmatrix}}$.", "$\\det = {a} \\cdot 1 - {b} \\cdot {c} = \\boxed{{{det}}}$."),
]
MATH_SYMBOLS = ["∀x ∈ ℝ: x² ≥ 0", "∑ᵢ aᵢ ≤ ∏ⱼ bⱼ", "α + β = γ, θ ≈ 3.14159", "lim_{n→∞} (1 + 1/n)ⁿ = e", "A ⊆ B ⇒ |A| ≤ |B|",
                "∇·E = ρ/ε₀", "f: ℕ → ℤ, n ↦ −n", "∫∫_D f(x, y) dA", "½ + ⅓ = ⅚", "x ≠ y ∧ y ≢ z (mod 7)", "√(a² + b²) ≥ 0",
                "P(A|B) = P(B|A)·P(A) / P(B)", "σ² = 𝔼[(X − μ)²]", "𝐯 = (v₁, v₂, v₃)ᵀ"]

# Sentences in twenty languages (everyday statements, written for this corpus).
MULTILINGUAL = {
    "fr": ["Je voudrais réserver une table pour deux personnes ce soir.", "L'été dernier, nous sommes allés à Marseille.", "Où se trouve la gare la plus proche ?"],
    "de": ["Können Sie mir bitte helfen? Ich habe mich verlaufen.", "Die Straßenbahn fährt alle zehn Minuten.", "Übermorgen schreibe ich meine Prüfung."],
    "es": ["¿Cuánto cuesta este libro? Me parece muy interesante.", "Mañana vamos a la playa con los niños.", "El año pasado aprendí a tocar la guitarra."],
    "pt": ["Você já experimentou pão de queijo? É delicioso!", "A reunião foi adiada para quinta-feira.", "Não sei se vou conseguir chegar a tempo."],
    "it": ["Vorrei un caffè e un cornetto, per favore.", "Perché non vieni con noi al cinema stasera?", "La città è più bella in autunno."],
    "nl": ["Ik fiets elke dag naar mijn werk, ook als het regent.", "Hoe laat begint de voorstelling?"],
    "pl": ["Dzień dobry! Czy mogę zapłacić kartą?", "Wczoraj padał śnieg przez cały dzień."],
    "tr": ["Bugün hava çok güzel, dışarı çıkalım mı?", "Türkçe öğrenmek düşündüğümden daha kolaymış."],
    "ru": ["Завтра у нас важная встреча с клиентом.", "Я читаю эту книгу уже третью неделю.", "Сколько стоит билет до Москвы?"],
    "uk": ["Дякую за допомогу, ви дуже добрі!", "Київ — столиця України."],
    "el": ["Καλημέρα! Θα ήθελα έναν καφέ, παρακαλώ.", "Η Αθήνα είναι μια αρχαία πόλη."],
    "ar": ["أين تقع أقرب محطة قطار؟", "تعلمت اللغة العربية في الجامعة قبل خمس سنوات.", "الطقس اليوم حار جداً، لا تنسَ الماء."],
    "fa": ["امروز هوا خیلی خوب است.", "کتابخانه ساعت هشت صبح باز می‌شود."],
    "he": ["אני לומד עברית כבר שנתיים.", "מה השעה עכשיו בתל אביב?"],
    "hi": ["मुझे हिंदी सीखना बहुत पसंद है।", "कल सुबह हम दिल्ली के लिए निकलेंगे।", "क्या आप मुझे रास्ता बता सकते हैं?"],
    "bn": ["আমি প্রতিদিন সকালে চা খাই।", "ঢাকা বাংলাদেশের রাজধানী।"],
    "ta": ["நான் சென்னையில் வசிக்கிறேன்.", "இன்று மழை பெய்யும் என்று நினைக்கிறேன்."],
    "th": ["วันนี้อากาศดีมาก ไปเที่ยวกันไหม", "ฉันชอบกินส้มตำมาก"],
    "vi": ["Tôi muốn đặt một phòng cho hai người.", "Hà Nội vào mùa thu rất đẹp."],
    "id": ["Saya sedang belajar bahasa Indonesia.", "Berapa harga tiket ke Bali?"],
    "sw": ["Habari za asubuhi? Natumaini uko salama.", "Ninapenda kusoma vitabu vya historia."],
    "zh": ["我今天下午要去图书馆借几本书。", "这个问题比我想象的要复杂得多。", "请问最近的地铁站在哪里？", "北京的秋天天气很好，适合旅游。"],
    "zh_tw": ["這家餐廳的牛肉麵非常好吃。", "我們明天早上九點在車站見面。"],
    "ja": ["明日は雨が降るかもしれないので、傘を持って行きます。", "この本はとても面白かったです。", "東京駅までどうやって行けばいいですか？", "ラーメンを食べに行きましょう！"],
    "ko": ["저는 매일 아침 커피를 마셔요.", "이번 주말에 친구들과 부산에 가요.", "한국어를 배우는 것은 재미있어요."],
}
EMOJI_BITS = ["😀", "🚀", "🔥", "👍🏽", "❤️", "🎉", "🤖", "🇯🇵", "👩‍💻", "✅", "❌", "⚠️", "🙏", "😂", "🌍", "1️⃣", "🏳️‍🌈", "☕"]

TABLE_HEADERS = [["Model", "Params", "MMLU", "GSM8K"], ["Country", "Capital", "Population"], ["Name", "Age", "City", "Score"],
                 ["Step", "Loss", "LR", "Tokens/s"], ["Item", "Price", "Qty"], ["語言", "說話者", "國家"]]
DOMAINS = ["example.com", "github.com", "huggingface.co", "arxiv.org", "en.wikipedia.org", "docs.python.org", "例子.测试",
           "news.ycombinator.com", "localhost:8080", "192.168.0.12"]
URL_PATHS = ["/", "/index.html", "/models/llama-3-8b", "/abs/2106.09685", "/wiki/Tokenization_(lexical_analysis)",
             "/search?q=lora+rank&page=2", "/3/library/re.html#re.sub", "/item?id=38242512", "/api/v1/users/42?fields=name,email",
             "/blob/main/README.md#installation", "/wiki/東京", "/path%20with%20spaces/%E2%9C%93"]


def fill(rng, template, slots):
    """The template with each slot drawn from its pool (pools are lists; a fixed string stays)."""
    values = {key: (rng.pick(pool) if isinstance(pool, list) else pool) for key, pool in slots.items()}
    return template.format(**values)


def alpaca_slots(rng):
    units = rng.pick(UNITS)
    pair = rng.pick(WORD_PAIRS)
    return {"topic": TOPICS, "topic2": TOPICS, "age": AGES, "n": ["2", "3", "4", "5"], "language": LANGUAGES, "task": TASKS,
            "value": str(rng.int(1, 500)), "unit_a": units[0], "unit_b": units[1], "items": ITEMS, "thing": THINGS,
            "request": REQUESTS, "claim": CLAIMS, "event": EVENTS, "word_a": pair[0], "word_b": pair[1]}


def response(rng, lo, hi):
    return " ".join(rng.pick(RESPONSE_SENTENCES) for _ in range(rng.int(lo, hi)))


def alpaca_records(corpus, rng, count):
    """Section 13: Alpaca records: each field alone, then the prompt as Alpaca's own format writes it."""
    for _ in range(count):
        instruction = fill(rng, rng.pick(INSTRUCTIONS), alpaca_slots(rng))
        given = rng.pick(INPUTS) if rng.next() < 0.4 else ""
        output = response(rng, 1, 5)
        if rng.next() < 0.3:
            output = output + "\n\n1. " + rng.pick(RESPONSE_SENTENCES) + "\n2. " + rng.pick(RESPONSE_SENTENCES)
        corpus.add_all([instruction, output] + ([given] if given else []))
        if given:
            corpus.add(f"{ALPACA_PREAMBLE_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{given}\n\n### Response:\n{output}")
        else:
            corpus.add(f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}")
        if rng.next() < 0.3:
            record = {"instruction": instruction, "input": given, "output": output}
            corpus.add(json.dumps(record, ensure_ascii=rng.next() < 0.5))


def conversation(rng):
    """A ShareGPT-like exchange: an opener, assistant answers, follow-ups; sometimes a system prompt."""
    turns = [("human", rng.pick(OPENERS))]
    for k in range(rng.int(1, 3)):
        turns.append(("gpt", response(rng, 1, 4)))
        if k + 1 < 3 and rng.next() < 0.6:
            turns.append(("human", rng.pick(FOLLOW_UPS)))
    system = rng.pick(SYSTEM_PROMPTS) if rng.next() < 0.4 else None
    return system, turns


def chat_records(corpus, rng, count):
    """Section 14: conversations as ShareGPT (from/value) and OpenAI messages datasets hold them: turn texts,
    and whole JSONL lines (raw UTF-8 and \\u-escaped)."""
    roles = {"human": "user", "gpt": "assistant"}
    for _ in range(count):
        system, turns = conversation(rng)
        corpus.add_all(value for _, value in turns)
        kind = rng.int(0, 3)
        if kind == 0:
            record = {"conversations": ([{"from": "system", "value": system}] if system else []) +
                      [{"from": who, "value": value} for who, value in turns]}
        elif kind == 1:
            record = {"messages": ([{"role": "system", "content": system}] if system else []) +
                      [{"role": roles[who], "content": value} for who, value in turns]}
        else:
            corpus.add("\n\n".join(("User: " if who == "human" else "Assistant: ") + value for who, value in turns))
            continue
        corpus.add(json.dumps(record, ensure_ascii=rng.next() < 0.3))


def code_snippet(rng):
    language = rng.pick(list(CODE_TEMPLATES))
    slots = {"f": CODE_NAMES, "a": VAR_NAMES, "b": VAR_NAMES, "C": CLASS_NAMES, "w": WORDS, "n": str(rng.int(2, 512)),
             "m": str(rng.int(2, 9))}
    slots["W"] = rng.pick(WORDS).upper()
    return language, fill(rng, rng.pick(CODE_TEMPLATES[language]), slots)


def code_records(corpus, rng, count):
    """Section 15: code in a dozen languages, alone, re-indented with tabs or 2 spaces, and fenced inside an answer."""
    for _ in range(count):
        language, code = code_snippet(rng)
        corpus.add(code)
        style = rng.int(0, 3)
        if style == 0:
            corpus.add(code.replace("    ", "\t"))
        elif style == 1:
            corpus.add(f"{rng.pick(RESPONSE_SENTENCES)}\n\n```{language}\n{code.rstrip()}\n```\n\n{rng.pick(RESPONSE_SENTENCES)}")
        elif style == 2:
            corpus.add(code.replace("    ", "  ").rstrip() + "  \n\n\n")


def math_records(corpus, rng, count):
    """Section 16: GSM8K-style problems with <<calc>> annotations and #### answers, MATH-style LaTeX, and
    Unicode math."""
    for _ in range(count):
        a, b, c = rng.int(2, 60), rng.int(2, 12), rng.int(2, 40)
        question, answer = rng.pick(GSM_TEMPLATES)
        values = {"name": rng.pick(NAMES), "a": a, "b": b, "c": c, "bc": b * c, "r1": a + b * c, "ab": a * b, "c2": c * 2,
                  "r2": a * b + c * 2, "r3": a * b - c}
        corpus.add_all([question.format(**values), answer.format(**values)])
        question, answer = rng.pick(LATEX_TEMPLATES)
        r, q = rng.int(1, 9), rng.int(1, 9)
        values = {"a": a, "b": b, "c": c, "a1": a + 1, "r": r, "q": q, "s": r + q, "p": r * q, "tri": a * (a + 1) // 2,
                  "aa": a * a, "half": f"{b * a * a / 2:g}", "det": a - b * c}
        corpus.add(question.format(**values) + "\n\n" + answer.format(**values))
        if rng.next() < 0.3:
            corpus.add(rng.pick(MATH_SYMBOLS) + rng.pick([", ", "\n", " and ", "; "]) + rng.pick(MATH_SYMBOLS))


def multilingual_records(corpus, rng, count):
    """Section 17: sentences of twenty languages alone, paired, code-switched with English, as translation
    requests and with emoji."""
    languages = list(MULTILINGUAL)
    for sentences in MULTILINGUAL.values():
        corpus.add_all(sentences)
    for _ in range(count):
        one, two = MULTILINGUAL[rng.pick(languages)], MULTILINGUAL[rng.pick(languages)]
        kind = rng.int(0, 4)
        if kind == 0:
            corpus.add(rng.pick(one) + rng.pick([" ", "\n", "  ", "\n\n"]) + rng.pick(two))
        elif kind == 1:
            corpus.add(f"Translate to {rng.pick(LANGUAGES)}: \"{rng.pick(one)}\"")
        elif kind == 2:
            corpus.add(rng.pick(RESPONSE_SENTENCES) + " " + rng.pick(one) + " " + rng.pick(EMOJI_BITS))
        elif kind == 3:
            corpus.add(rng.pick(EMOJI_BITS) + rng.pick(one) + rng.pick(EMOJI_BITS) * rng.int(1, 3))
        else:
            corpus.add(f"{rng.pick(one)} ({rng.int(1, 2024)}, {rng.int(1, 99)}%)")


def table(rng):
    header = rng.pick(TABLE_HEADERS)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rng.pick(["---", ":---", ":---:", "---:"]) for _ in header) + "|"]
    for _ in range(rng.int(1, 5)):
        cells = [rng.pick([rng.pick(NAMES), str(rng.int(0, 99999)), f"{rng.next() * 100:.2f}", f"{rng.int(1, 70)}B",
                           rng.pick(EMOJI_BITS), "—", "n/a", f"{rng.next():.3e}"]) for _ in header]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def number_text(rng):
    kind = rng.int(0, 9)
    if kind == 0:
        return f"{2000 + rng.int(0, 30)}-{rng.int(1, 12):02d}-{rng.int(1, 28):02d}T{rng.int(0, 23):02d}:{rng.int(0, 59):02d}:00Z"
    if kind == 1:
        return f"${rng.int(0, 99999):,}.{rng.int(0, 99):02d}"
    if kind == 2:
        return f"{rng.int(0, 9999):,}".replace(",", ".") + f",{rng.int(0, 99):02d} €"
    if kind == 3:
        return f"{rng.next() * 100:.1f}% of {rng.int(1, 10 ** 6)}"
    if kind == 4:
        return f"{rng.int(1, 9)}.{rng.int(0, 99)}e-{rng.int(1, 12)}"
    if kind == 5:
        return f"0x{rng.int(0, 2 ** 31):08X}"
    if kind == 6:
        return f"v{rng.int(0, 5)}.{rng.int(0, 30)}.{rng.int(0, 99)}-rc{rng.int(1, 3)}"
    if kind == 7:
        return f"+1 ({rng.int(200, 999)}) {rng.int(100, 999)}-{rng.int(1000, 9999)}"
    if kind == 8:
        return f"{rng.int(1, 255)}.{rng.int(0, 255)}.{rng.int(0, 255)}.{rng.int(0, 255)}:{rng.int(1, 65535)}"
    return f"¥{rng.int(100, 99999)} / ₹{rng.int(100, 99999)} / £{rng.int(1, 999)}.{rng.int(0, 99):02d}"


def markdown_records(corpus, rng, count):
    """Section 18: markdown tables, lists and headings, URLs, numbers in common formats and whitespace runs."""
    for _ in range(count):
        kind = rng.int(0, 5)
        if kind == 0:
            corpus.add(table(rng))
        elif kind == 1:
            bullets = rng.pick(["- ", "* ", "1. ", "- [ ] ", "- [x] "])
            items = "\n".join(bullets + rng.pick(RESPONSE_SENTENCES) for _ in range(rng.int(2, 5)))
            corpus.add(f"{'#' * rng.int(1, 4)} {rng.pick(TOPICS).title()}\n\n{items}\n\n**Note:** _{rng.pick(RESPONSE_SENTENCES)}_")
        elif kind == 2:
            url = rng.pick(["https://", "http://", "https://www."]) + rng.pick(DOMAINS) + rng.pick(URL_PATHS)
            corpus.add(rng.pick([url, f"See [{rng.pick(TOPICS)}]({url}).", f"<{url}>", f"Source: {url}\n"]))
        elif kind == 3:
            corpus.add(" ".join(number_text(rng) for _ in range(rng.int(1, 4))))
        elif kind == 4:
            pad = rng.pick([" " * rng.int(2, 16), "\t" * rng.int(1, 4), "\n" * rng.int(2, 6), " \t \n", "\u3000\u3000", "\u00a0" * 3])
            corpus.add(rng.pick(RESPONSE_SENTENCES) + pad + rng.pick(RESPONSE_SENTENCES) + rng.pick(["", pad, " \n"]))
        else:
            corpus.add(f"> {rng.pick(RESPONSE_SENTENCES)}\n>\n> — {rng.pick(NAMES)}, {rng.int(1900, 2024)}")


def dataset_sections(corpus, rng):
    """Sections 13-18, in this order."""
    alpaca_records(corpus, rng, 330)
    chat_records(corpus, rng, 400)
    code_records(corpus, rng, 520)
    math_records(corpus, rng, 300)
    multilingual_records(corpus, rng, 500)
    markdown_records(corpus, rng, 520)
