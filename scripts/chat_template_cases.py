"""The conversations and the Jinja sources written for qtune that scripts/make_chat_template_fixtures.py renders.

The written sources were composed for qtune from the prompt formats' public descriptions (they are not
copies of any model's file); the conversations exercise system prompts, multi-turn exchanges, whitespace,
Unicode, thinking blocks, tool results, special-token text and role orders templates may refuse.
"""

# Llama-2-chat: every user turn is "<s>[INST] ... [/INST]", every answer " ... </s>"; an optional system
# prompt sits in a <<SYS>> block at the top of the first user turn. Each turn's text is stripped as a
# whole (for the first turn that is the <<SYS>> block plus the user text, so the system prompt's inner
# whitespace and the user text's leading whitespace survive). Roles must alternate user/assistant after
# the optional system message.
LLAMA2 = "".join([
    "{%- if messages[0]['role'] == 'system' -%}",
    "{%- set sys_prompt = messages[0]['content'] -%}{%- set turns = messages[1:] -%}",
    "{%- else -%}",
    "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
    "{%- endif -%}",
    "{%- for m in turns -%}",
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
    "{{- raise_exception('llama2: roles must alternate user/assistant (optionally after one system message)') -}}",
    "{%- endif -%}",
    "{%- if m['role'] == 'user' -%}",
    "{%- if loop.first and sys_prompt is not none -%}",
    "{%- set body = '<<SYS>>\\n' + sys_prompt + '\\n<</SYS>>\\n\\n' + m['content'] -%}",
    "{%- else -%}",
    "{%- set body = m['content'] -%}",
    "{%- endif -%}",
    "{{- bos_token + '[INST] ' + body | trim + ' [/INST]' -}}",
    "{%- else -%}",
    "{{- ' ' + m['content'] | trim + ' ' + eos_token -}}",
    "{%- endif -%}",
    "{%- endfor -%}",
])

# Mistral-7B-Instruct v0.1/v0.2: "<s>[INST] user [/INST]answer</s>[INST] user2 [/INST]answer2</s>";
# a system prompt is prepended to the first user message with a blank line. Roles must alternate.
MISTRAL = "".join([
    "{%- if messages[0]['role'] == 'system' -%}",
    "{%- set sys_prompt = messages[0]['content'] -%}{%- set turns = messages[1:] -%}",
    "{%- else -%}",
    "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
    "{%- endif -%}",
    "{{- bos_token -}}",
    "{%- for m in turns -%}",
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
    "{{- raise_exception('mistral: roles must alternate user/assistant (optionally after one system message)') -}}",
    "{%- endif -%}",
    "{%- if m['role'] == 'user' -%}",
    "{%- if loop.first and sys_prompt is not none -%}",
    "{{- '[INST] ' + sys_prompt + '\\n\\n' + m['content'] + ' [/INST]' -}}",
    "{%- else -%}",
    "{{- '[INST] ' + m['content'] + ' [/INST]' -}}",
    "{%- endif -%}",
    "{%- else -%}",
    "{{- m['content'] + eos_token -}}",
    "{%- endif -%}",
    "{%- endfor -%}",
])

# ChatML: "<|im_start|>{role}\n{content}<|im_end|>\n" for every message, any role; contents verbatim.
CHATML = "".join([
    "{%- for m in messages -%}",
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' -}}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
])

# Gemma: "<bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n...<end_of_turn>\n";
# the assistant role is called "model", contents are trimmed, a system prompt is merged into the first
# user turn followed by a blank line. Roles must alternate.
GEMMA = "".join([
    "{%- if messages[0]['role'] == 'system' -%}",
    "{%- set sys_prompt = messages[0]['content'] | trim -%}{%- set turns = messages[1:] -%}",
    "{%- else -%}",
    "{%- set sys_prompt = none -%}{%- set turns = messages -%}",
    "{%- endif -%}",
    "{{- bos_token -}}",
    "{%- for m in turns -%}",
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}",
    "{{- raise_exception('gemma: roles must alternate user/assistant (optionally after one system message)') -}}",
    "{%- endif -%}",
    "{%- if m['role'] == 'assistant' -%}{%- set who = 'model' -%}{%- else -%}{%- set who = m['role'] -%}{%- endif -%}",
    "{%- if loop.first and sys_prompt is not none -%}",
    "{%- set body = sys_prompt + '\\n\\n' + m['content'] | trim -%}",
    "{%- else -%}",
    "{%- set body = m['content'] | trim -%}",
    "{%- endif -%}",
    "{{- '<start_of_turn>' + who + '\\n' + body + '<end_of_turn>\\n' -}}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}",
])

# Phi-3 mini instruct (4k/128k): every message "<|{role}|>\n{content}<|end|>\n", contents verbatim; the
# generation prompt is "<|assistant|>\n", without it the conversation ends with eos_token. The published
# template drops roles other than system/user/assistant silently; this one refuses them, as qtune does.
PHI3_TURN = "{{- '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' -}}"
PHI3_ROLES = ("{%- if m['role'] not in ['system', 'user', 'assistant'] -%}"
              "{{- raise_exception('only system, user and assistant messages') -}}{%- endif -%}")
PHI3_END = "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}"
PHI3 = "{%- for m in messages -%}" + PHI3_ROLES + PHI3_TURN + "{%- endfor -%}" + PHI3_END

# Phi-3.5 mini instruct: Phi-3's format, except that a system message with empty content writes no turn.
PHI3_5 = ("{%- for m in messages -%}" + PHI3_ROLES + "{%- if m['role'] != 'system' or m['content'] -%}" + PHI3_TURN +
          "{%- endif -%}{%- endfor -%}" + PHI3_END)

# Phi-4 (14B): every message "<|im_start|>{role}<|im_sep|>{content}<|im_end|>" with no newlines; the
# generation prompt is "<|im_start|>assistant<|im_sep|>"; nothing after a finished conversation.
PHI4 = "".join([
    "{%- for m in messages -%}",
    "{%- if m['role'] not in ['system', 'user', 'assistant'] -%}",
    "{{- raise_exception('only system, user and assistant messages') -}}",
    "{%- endif -%}",
    "{{- '<|im_start|>' + m['role'] + '<|im_sep|>' + m['content'] + '<|im_end|>' -}}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant<|im_sep|>' -}}{%- endif -%}",
])

# Phi-4-mini instruct: every message, whatever its role, "<|{role}|>{content}<|end|>" with no newlines; the
# generation prompt is "<|assistant|>", without it the conversation ends with eos_token. (Tool definitions
# on a system message, which qtune's messages do not carry, are left out.)
PHI4_MINI = "".join([
    "{%- for m in messages -%}",
    "{{- '<|' + m['role'] + '|>' + m['content'] + '<|end|>' -}}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- else -%}{{- eos_token -}}{%- endif -%}",
])

# The chat_template of each model's tokenizer_config.json as Microsoft publishes it (microsoft/Phi-3-mini-4k-instruct,
# microsoft/Phi-3.5-mini-instruct, microsoft/phi-4, microsoft/Phi-4-mini-instruct): the recognizer must map these
# to the built-in names, and on every conversation the written source accepts they must render the same text.
PUBLISHED = {
    "phi3": ("{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
             "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
             "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    "phi3_5": ("{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
               "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
               "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
               "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    "phi4": ("{% for message in messages %}{% if (message['role'] == 'system') %}"
             "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
             "{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}"
             "{% elif (message['role'] == 'assistant') %}{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}"
             "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"),
    "phi4_mini": ("{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
                  "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
                  "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"),
}

# Alpaca: the standard preamble (or the system message instead of it), then "### Instruction:" /
# "### Response:" blocks; each answer ends with eos_token; the generation prompt is an open response block.
ALPACA_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
ALPACA = "".join([
    "{%- if messages[0]['role'] == 'system' -%}",
    "{{- messages[0]['content'] + '\\n\\n' -}}{%- set turns = messages[1:] -%}",
    "{%- else -%}",
    "{{- '" + ALPACA_PREAMBLE + "' + '\\n\\n' -}}{%- set turns = messages -%}",
    "{%- endif -%}",
    "{%- for m in turns -%}",
    "{%- if m['role'] == 'user' -%}",
    "{{- '### Instruction:\\n' + m['content'] + '\\n\\n' -}}",
    "{%- elif m['role'] == 'assistant' -%}",
    "{{- '### Response:\\n' + m['content'] + eos_token + '\\n\\n' -}}",
    "{%- else -%}",
    "{{- raise_exception('alpaca: only user and assistant roles may follow the system message') -}}",
    "{%- endif -%}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- '### Response:\\n' -}}{%- endif -%}",
])


def U(content):
    return {"role": "user", "content": content}


def A(content):
    return {"role": "assistant", "content": content}


def S(content):
    return {"role": "system", "content": content}


def TOOL(content):
    return {"role": "tool", "content": content}


# Each conversation is rendered with every listed add_generation_prompt value ("agp").
CONVERSATIONS = [
    {"name": "single_user", "agp": [True, False], "messages": [U("Hello! Who are you?")]},
    {"name": "single_turn", "agp": [False], "messages": [U("What is 2 + 2?"), A("2 + 2 = 4.")]},
    {"name": "system_single_user", "agp": [True, False], "messages": [S("You are a concise assistant."), U("Name three primary colors.")]},
    {"name": "system_single_turn", "agp": [False],
     "messages": [S("You are a concise assistant."), U("Name three primary colors."), A("Red, blue and yellow.")]},
    {"name": "multi_turn_3x3", "agp": [False],
     "messages": [U("Hi there."), A("Hello! How can I help?"), U("What's the tallest mountain?"), A("Mount Everest, at about 8,849 m."),
                  U("And the deepest ocean trench?"), A("The Mariana Trench.")]},
    {"name": "system_multi_turn_3x3", "agp": [False],
     "messages": [S("You answer in one short sentence."), U("Capital of France?"), A("Paris."), U("Capital of Japan?"), A("Tokyo."),
                  U("Capital of Canada?"), A("Ottawa.")]},
    {"name": "ends_with_user", "agp": [True, False],
     "messages": [U("Tell me a joke."), A("Why did the tensor cross the road? To broadcast."), U("Another one, please.")]},
    {"name": "system_ends_with_user", "agp": [True, False],
     "messages": [S("Be brief."), U("Define LoRA."), A("Low-rank adapters added to frozen weights."), U("Define QLoRA.")]},
    {"name": "whitespace_content", "agp": [True, False],
     "messages": [S("  System with spaces.  \n"), U("  leading and trailing spaces  "), A("\n\nanswer after newlines\n\n"),
                  U("\tline one\nline two\r\nline three \n")]},
    {"name": "unicode_content", "agp": [True, False],
     "messages": [U("Traduis \u00ab caf\u00e9 cr\u00e8me \u00bb en \u4e2d\u6587, \u0440\u0443\u0441\u0441\u043a\u0438\u0439 und Deutsch \U0001F600"),
                  A("\u5496\u5561\u5976\u6cb9 / \u043a\u043e\u0444\u0435 \u0441\u043e \u0441\u043b\u0438\u0432\u043a\u0430\u043c\u0438 / Milchkaffee \u2615\ufe0f"),
                  U("\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \U0001F468\u200d\U0001F469\u200d\U0001F467 e\u0301 \u00a0nbsp")]},
    {"name": "think_tags_in_assistant", "agp": [True, False],
     "messages": [U("What is 3 * 7?"), A("<think>\n3 times 7 is 21.\n</think>\n\n21"), U("And 21 + 1?"), A("<think>\nadd one\n</think>\n\n22")]},
    {"name": "empty_contents", "agp": [True, False], "messages": [U(""), A(""), U("now say something")]},
    {"name": "tool_results", "agp": [True, False],
     "messages": [U("Weather in Paris and Rome?"), A("Let me look both up."), TOOL("{\"city\": \"Paris\", \"temp\": 18}"),
                  TOOL("{\"city\": \"Rome\", \"temp\": 24}"), A("Paris is 18 degrees, Rome 24."), U("Thanks!")]},
    {"name": "tool_result_last", "agp": [True, False],
     "messages": [U("Weather in Oslo?"), A("Looking it up."), TOOL("{\"city\": \"Oslo\", \"temp\": 3}")]},
    {"name": "reasoning_content_field", "agp": [False],
     "messages": [U("Is 7 prime?"), {"role": "assistant", "content": "Yes.", "reasoning_content": "\nCheck divisors 2..2: none.\n"}]},
    {"name": "special_tokens_in_content", "agp": [False],
     "messages": [U("Is <|eot_id|> or </s> or <|im_end|> special?"), A("They are just text here: <s> <bos>.")]},
    {"name": "two_systems", "agp": [True], "messages": [S("First rule."), S("Second rule."), U("Go.")]},
    {"name": "two_users_in_a_row", "agp": [True], "messages": [U("First message."), U("Second message without an answer between.")]},
    {"name": "assistant_first", "agp": [False], "messages": [A("I speak first."), U("Okay.")]},
    {"name": "empty_system", "agp": [True, False], "messages": [S(""), U("Hi."), A("Hello.")]},
]


# ---- the same templates with {% generation %} marks, for transformers' return_assistant_tokens_mask ----
# Each marked source is its original with the assistant output (content and end-of-turn token, the text
# qtune trains with train_on_eos: turn) wrapped in {% generation %}; headers and the newline after the
# end-of-turn token stay outside. The substitutions fail loudly when an original changes.

def replace_once(source, old, new):
    if source.count(old) != 1:
        raise SystemExit(f"marking a chat template: expected exactly one {old!r}")
    return source.replace(old, new)


def replace_between(source, start, end, new):
    """`source` with the text from `start` up to (not including) `end` replaced by `new`."""
    begin = source.index(start)
    return source[:begin] + new + source[source.index(end, begin):]


def mark_llama3(source):
    return replace_once(source, "{{ content }}{% endfor %}",
                        "{% if message['role'] == 'assistant' %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
                        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% generation %}"
                        "{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}{% else %}{{ content }}{% endif %}{% endfor %}")


def mark_qwen2_5(source):
    return replace_once(source,
                        "{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
                        "(message.role == \"assistant\" and not message.tool_calls) %}",
                        "{%- if message.role == \"assistant\" and not message.tool_calls %}{{- '<|im_start|>assistant\\n' }}"
                        "{%- generation %}{{- message.content + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"
                        "{%- elif (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}")


# Qwen 3's assistant branch, rewritten so one generation block holds the body (with the thinking block
# where the original writes one) and <|im_end|>; tool_calls, which qtune's messages lack, are left out.
QWEN3_ASSISTANT = """{%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            {%- set body = '<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') %}
        {%- else %}
            {%- set body = content %}
        {%- endif %}
        {{- '<|im_start|>' + message.role + '\\n' }}
        {%- generation %}{{- body + '<|im_end|>' }}{%- endgeneration %}
        {{- '\\n' }}
    """


def mark_qwen3(source):
    return replace_between(source, "{%- elif message.role == \"assistant\" %}", "{%- elif message.role == \"tool\" %}", QWEN3_ASSISTANT)


def mark_gemma3(source):
    start = "{%- if message['content'] is string -%}"
    end = "{{ '<end_of_turn>\n' }}"
    begin = source.index(start)
    original = source[begin:source.index(end, begin) + len(end)]
    marked = ("{%- if role == 'model' and message['content'] is string -%}{%- generation -%}"
              "{{ message['content'] | trim + '<end_of_turn>' }}{%- endgeneration -%}{{ '\\n' }}{%- else -%}" + original + "{%- endif -%}")
    return replace_once(source, original, marked)


def mark_deepseek_v3(source):
    for head in ("<\uff5ctool\u2581outputs\u2581end\uff5c>", "<\uff5cAssistant\uff5c>"):
        source = replace_once(source, "{{'" + head + "' + message['content'] + '<\uff5cend\u2581of\u2581sentence\uff5c>'}}",
                              "{{'" + head + "'}}{% generation %}{{message['content'] + '<\uff5cend\u2581of\u2581sentence\uff5c>'}}{% endgeneration %}")
    return source


def mark_written(name):
    """The written sources, marked the same way."""
    if name == "llama2":
        return replace_once(LLAMA2, "{{- ' ' + m['content'] | trim + ' ' + eos_token -}}",
                            "{{- ' ' -}}{%- generation -%}{{- m['content'] | trim + ' ' + eos_token -}}{%- endgeneration -%}")
    if name == "mistral":
        return replace_once(MISTRAL, "{{- m['content'] + eos_token -}}", "{%- generation -%}{{- m['content'] + eos_token -}}{%- endgeneration -%}")
    if name == "chatml":
        line = "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' -}}"
        return replace_once(CHATML, line, "{%- if m['role'] == 'assistant' -%}{{- '<|im_start|>assistant\\n' -}}{%- generation -%}"
                            "{{- m['content'] + '<|im_end|>' -}}{%- endgeneration -%}{{- '\\n' -}}{%- else -%}" + line + "{%- endif -%}")
    if name == "gemma":
        line = "{{- '<start_of_turn>' + who + '\\n' + body + '<end_of_turn>\\n' -}}"
        return replace_once(GEMMA, line, "{%- if who == 'model' -%}{{- '<start_of_turn>model\\n' -}}{%- generation -%}"
                            "{{- body + '<end_of_turn>' -}}{%- endgeneration -%}{{- '\\n' -}}{%- else -%}" + line + "{%- endif -%}")
    if name == "alpaca":
        return replace_once(ALPACA, "{{- '### Response:\\n' + m['content'] + eos_token + '\\n\\n' -}}",
                            "{{- '### Response:\\n' -}}{%- generation -%}{{- m['content'] + eos_token -}}{%- endgeneration -%}{{- '\\n\\n' -}}")
    if name in ("phi3", "phi3_5"):
        source = PHI3 if name == "phi3" else PHI3_5
        return replace_once(source, PHI3_TURN, "{%- if m['role'] == 'assistant' -%}{{- '<|assistant|>\\n' -}}{%- generation -%}"
                            "{{- m['content'] + '<|end|>' -}}{%- endgeneration -%}{{- '\\n' -}}{%- else -%}" + PHI3_TURN + "{%- endif -%}")
    if name == "phi4":
        return replace_once(PHI4, "{{- '<|im_start|>' + m['role'] + '<|im_sep|>' + m['content'] + '<|im_end|>' -}}",
                            "{{- '<|im_start|>' + m['role'] + '<|im_sep|>' -}}{%- if m['role'] == 'assistant' -%}"
                            "{%- generation -%}{{- m['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
                            "{%- else -%}{{- m['content'] + '<|im_end|>' -}}{%- endif -%}")
    if name == "phi4_mini":
        return replace_once(PHI4_MINI, "{{- '<|' + m['role'] + '|>' + m['content'] + '<|end|>' -}}",
                            "{{- '<|' + m['role'] + '|>' -}}{%- if m['role'] == 'assistant' -%}"
                            "{%- generation -%}{{- m['content'] + '<|end|>' -}}{%- endgeneration -%}"
                            "{%- else -%}{{- m['content'] + '<|end|>' -}}{%- endif -%}")
    raise SystemExit(f"no marked version of {name}")


MARK_SHIPPED = {"llama3": mark_llama3, "llama3_1": mark_llama3, "qwen2_5": mark_qwen2_5, "qwen3": mark_qwen3,
                "gemma3": mark_gemma3, "deepseek_v3": mark_deepseek_v3}


def marked(name, source):
    """The generation-marked version of template `name` (`source`: its original Jinja)."""
    return MARK_SHIPPED[name](source) if name in MARK_SHIPPED else mark_written(name)
