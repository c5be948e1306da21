"""Tiny random models and a tiny tokenizer, built offline in about a second.

Every later feature (SFT, the reward model, PPO, evaluation, the chat demo) has to be testable without
downloading a 7B checkpoint or even a real tokenizer. This module trains a byte-level BPE tokenizer on a
small multilingual corpus embedded at the bottom of this file and wraps a randomly initialised BLOOM or
Llama model around it (the two families Okapi fine-tuned). The result is saved in the same layout as a
Hub checkpoint, so the ordinary ``from_pretrained`` calls load it and code under test cannot tell the
difference except by size.

Nothing is cached at module level: every call trains and builds afresh, so tests cannot depend on the
order they run in. Both steps are deterministic, so a fresh build is also a reproducible one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    GenerationConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
)

TINY_ARCHS: tuple[str, ...] = ("bloom", "llama")
# TrainingArguments for a tiny model on a CPU: fp32 (exact comparisons), no checkpointing, nothing saved
# or reported unless asked. trl defaults to bf16 and gradient checkpointing, which only slow tiny runs.
CPU_TRAINING_ARGS: dict[str, object] = {
    "bf16": False,
    "activation_checkpointing": False,
    "use_cpu": True,
    "report_to": "none",
    "save_strategy": "no",
    "disable_tqdm": True,
}

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
# Chat role markers are special tokens, so each is one id and `decode(..., skip_special_tokens=True)`
# removes them from generated text the same way it removes eos.
ROLE_MARKERS: dict[str, str] = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
# Ids 0-3 match the real BLOOM tokenizer (unk, bos, eos, pad); the role markers follow as 4-6.
SPECIAL_TOKENS: tuple[str, ...] = (UNK, BOS, EOS, PAD, *ROLE_MARKERS.values())
MODEL_MAX_LENGTH = 2048

# A ChatML-like format: every turn opens with its role marker and a newline; system and user turns end
# with a newline, assistant turns with eos (that is what a model must learn to emit to stop). The
# assistant text sits in a {% generation %} block so `return_assistant_tokens_mask=True` works, which
# TRL's assistant-only loss relies on. Markers are written literally (not built as '<|' + role + '|>') so
# `sanitize_control_tokens=True` can recognise them, and unknown roles fail loudly instead of rendering.
CHAT_TEMPLATE = (
    "{%- set markers = {'system': '<|system|>', 'user': '<|user|>', 'assistant': '<|assistant|>'} -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in markers -%}"
    "{{ raise_exception('Unknown chat role: ' + message['role']) }}"
    "{%- endif -%}"
    "{{ markers[message['role']] + '\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ message['content'] + '\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- endif -%}"
)


def train_tiny_tokenizer(
    vocab_size: int = 1024,
    *,
    extra_texts: Iterable[str] = (),
    padding_side: str = "right",
    add_bos: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the embedded multilingual corpus (plus ``extra_texts``).

    Byte-level means every string encodes without ``<unk>``: Okapi's 26 languages span a dozen scripts
    and a test in any of them must not silently lose characters. The tokenizer adds no bos/eos on its own
    (like BLOOM's) unless ``add_bos``, which puts ``<s>`` in front of every text as Llama's and Gemma's
    tokenizers do; append ``tokenizer.eos_token`` yourself where a sequence must end. The vocabulary
    holds at most ``vocab_size`` entries (fewer only if the corpus runs out of pairs to merge).
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (256 bytes + specials)")
    backend = Tokenizer(models.BPE(unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)  # offsets stay exact (assistant masks)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([*corpus_texts(), *extra_texts], trainer=trainer)
    if add_bos:
        bos = (BOS, backend.token_to_id(BOS))
        backend.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[bos]),
            ]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        extra_special_tokens=list(ROLE_MARKERS.values()),
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side=padding_side,  # an init argument, so save_pretrained writes it to tokenizer_config.json
    )


def make_tiny_model(
    arch: str,
    out_dir: str | Path,
    *,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    extra_texts: Iterable[str] = (),
) -> Path:
    """Save a randomly initialised ``arch`` model with its tokenizer and generation config to ``out_dir``.

    The directory loads offline with ``AutoModelForCausalLM``, ``AutoTokenizer`` and
    ``AutoModelForSequenceClassification(num_labels=1)`` (the reward model); the config carries
    ``pad_token_id`` because sequence classification pools on the last non-pad token. The same ``seed``
    gives the same weights; the caller's global torch RNG is left untouched.
    """
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny arch {arch!r}; expected one of: {', '.join(TINY_ARCHS)}")
    # The real bigscience/bloom tokenizer pads on the left, so batched generation with BLOOM checkpoints
    # appends new tokens right after each prompt. Llama-2's tokenizer pads on the right (the training
    # default). Mirroring both makes tests exercise the padding side the real checkpoints will bring.
    padding_side = "left" if arch == "bloom" else "right"
    tokenizer = train_tiny_tokenizer(vocab_size, extra_texts=extra_texts, padding_side=padding_side)
    token_ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = _tiny_config(arch, len(tokenizer), hidden_size, num_layers, num_heads, token_ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(**token_ids)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # safetensors, the only format transformers 5 writes
    tokenizer.save_pretrained(out)
    return out


def _tiny_config(
    arch: str, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, token_ids: dict[str, int]
) -> PretrainedConfig:
    """The architecture's own config class at tiny sizes, so its real modelling code runs in tests."""
    if arch == "bloom":
        return BloomConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, n_layer=num_layers, n_head=num_heads, **token_ids
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=MODEL_MAX_LENGTH,
        **token_ids,
    )


def corpus_texts() -> list[str]:
    """The tokenizer's training text: the Okapi prompt template, then every sentence of the corpus."""
    return [*_OKAPI_TEMPLATE_TEXTS, *(sentence for sentences in _CORPUS.values() for sentence in sentences)]


# ---------------------------------------------------------------------------------------------------
# Training corpus. Short everyday sentences, written for this module, in one language per major script
# Okapi covers, so that BPE learns merges for each script and token counts stay realistic-ish.

# The Alpaca-style prompt Okapi trains and evaluates with, with and without an input field.
_OKAPI_TEMPLATE_TEXTS: tuple[str, ...] = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n### Response:\n",
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Response:\n",
)

_CORPUS: dict[str, tuple[str, ...]] = {
    "en": (
        "The weather was cold this morning, so I stayed at home and read a book.",
        "Please write a short poem about the sea and the wind.",
        "Translate the following sentence into French.",
        "What is the capital city of Australia?",
        "The committee will announce its decision next Tuesday after a long debate.",
        "Water boils at one hundred degrees Celsius at sea level.",
        "She asked her brother to help her carry the heavy boxes upstairs.",
        "Explain why the sky looks blue during the day.",
        "A healthy breakfast gives you energy for the whole morning.",
        "The train to the city leaves every twenty minutes from platform three.",
        "Give three tips for staying focused while studying.",
        "Many people learn a second language to travel or to find a better job.",
        "The museum opens at nine o'clock and closes at six in the evening.",
        "Summarize the main idea of the article in one sentence.",
        "Our neighbours planted tomatoes, beans and sunflowers in their garden.",
        "The children laughed when the dog chased its own tail.",
        "Scientists believe that the universe is about fourteen billion years old.",
        "Classify the following animals as mammals or birds: whale, eagle, bat, penguin.",
        "He forgot his umbrella and came home soaked to the skin.",
        "Reading every day improves your vocabulary and your writing.",
        "Describe the taste of a ripe mango to someone who has never eaten one.",
        "The library has thousands of books in many different languages.",
        "I would like to book a table for two people at seven o'clock.",
        "Write a polite email asking your manager for a day off.",
        "Good communication is important in every team.",
    ),
    "vi": (
        "Hôm nay trời đẹp, chúng tôi đi dạo trong công viên.",
        "Hãy viết một bài thơ ngắn về biển và gió.",
        "Thủ đô của Việt Nam là Hà Nội.",
        "Tôi thích uống cà phê sữa đá vào buổi sáng.",
        "Mẹ tôi nấu phở rất ngon vào mỗi cuối tuần.",
        "Học sinh cần đọc sách mỗi ngày để mở rộng vốn từ.",
        "Xin hãy giải thích tại sao bầu trời có màu xanh.",
        "Chiếc xe buýt đến trường lúc bảy giờ sáng.",
        "Anh ấy đã quên mang ô nên bị ướt hết người.",
        "Dịch câu sau sang tiếng Anh.",
        "Nước sôi ở một trăm độ C ở mực nước biển.",
        "Thành phố Hồ Chí Minh là thành phố lớn nhất của Việt Nam.",
        "Chúng ta nên bảo vệ môi trường cho thế hệ tương lai.",
        "Bà ngoại kể cho các cháu nghe một câu chuyện cổ tích.",
        "Hãy tóm tắt ý chính của bài báo trong một câu.",
        "Con mèo đang ngủ trên chiếc ghế cạnh cửa sổ.",
        "Người Việt thường ăn Tết Nguyên Đán cùng gia đình.",
        "Tôi muốn đặt một bàn cho hai người lúc bảy giờ tối.",
        "Sông Mê Kông chảy qua nhiều quốc gia ở Đông Nam Á.",
        "Hãy đưa ra ba lời khuyên để học tập hiệu quả hơn.",
        "Buổi hòa nhạc tối qua thật tuyệt vời.",
        "Em gái tôi đang học năm thứ hai đại học.",
        "Trời mưa to nên trận bóng đá bị hoãn lại.",
        "Làm ơn cho tôi biết đường đến nhà ga.",
        "Giao tiếp tốt rất quan trọng trong mọi công việc.",
    ),
    "de": (
        "Heute Morgen war es kalt, deshalb bin ich zu Hause geblieben.",
        "Bitte schreibe ein kurzes Gedicht über das Meer.",
        "Die Hauptstadt von Deutschland ist Berlin.",
        "Der Zug nach München fährt um acht Uhr ab.",
        "Meine Großmutter backt jeden Sonntag einen Apfelkuchen.",
        "Erkläre, warum der Himmel tagsüber blau aussieht.",
        "Wasser kocht auf Meereshöhe bei hundert Grad Celsius.",
        "Die Kinder spielen nach der Schule im Garten.",
        "Übersetze den folgenden Satz ins Englische.",
        "Wir müssen die Umwelt für zukünftige Generationen schützen.",
        "Er hat seinen Regenschirm vergessen und ist völlig nass geworden.",
        "Fasse die Hauptidee des Artikels in einem Satz zusammen.",
        "Das Museum öffnet um neun Uhr und schließt um achtzehn Uhr.",
        "Ich möchte einen Tisch für zwei Personen reservieren.",
        "Gib drei Tipps, wie man sich beim Lernen besser konzentriert.",
        "Viele Menschen lernen eine Fremdsprache, um zu reisen.",
        "Der Hund lief fröhlich über die grüne Wiese.",
        "In der Bibliothek gibt es Bücher in vielen Sprachen.",
        "Die Besprechung wurde auf nächsten Donnerstag verschoben.",
        "Schreibe eine höfliche E-Mail an deinen Vorgesetzten.",
        "Gute Kommunikation ist in jedem Team wichtig.",
        "Der Rhein fließt durch mehrere Länder Europas.",
        "Kannst du mir bitte den Weg zum Bahnhof zeigen?",
        "Frisches Brot vom Bäcker schmeckt am besten.",
        "Im Winter fahren wir gern in die Berge zum Skifahren.",
    ),
    "ru": (
        "Сегодня утром было холодно, поэтому я остался дома.",
        "Пожалуйста, напиши короткое стихотворение о море.",
        "Столица России — Москва.",
        "Поезд в Санкт-Петербург отправляется в восемь часов.",
        "Моя бабушка каждое воскресенье печёт пироги.",
        "Объясни, почему небо днём кажется голубым.",
        "Вода кипит при ста градусах Цельсия на уровне моря.",
        "Дети играют во дворе после школы.",
        "Переведи следующее предложение на английский язык.",
        "Мы должны беречь природу для будущих поколений.",
        "Он забыл зонт и промок до нитки.",
        "Кратко изложи основную мысль статьи в одном предложении.",
        "Музей открывается в девять часов утра.",
        "Я хотел бы заказать столик на двоих на семь часов вечера.",
        "Дай три совета, как лучше сосредоточиться во время учёбы.",
        "Многие люди изучают иностранные языки, чтобы путешествовать.",
        "Собака весело бежала по зелёному лугу.",
        "В библиотеке есть книги на многих языках.",
        "Встреча перенесена на следующий четверг.",
        "Напиши вежливое письмо своему руководителю.",
        "Хорошее общение важно в любой команде.",
        "Волга — самая длинная река в Европе.",
        "Скажите, пожалуйста, как пройти к вокзалу?",
        "Свежий хлеб из пекарни самый вкусный.",
        "Зимой мы любим кататься на лыжах в горах.",
    ),
    "zh": (
        "今天早上很冷，所以我待在家里看书。",
        "请写一首关于大海的短诗。",
        "中国的首都是北京。",
        "去上海的火车每二十分钟一班。",
        "我的奶奶每个周末都会包饺子。",
        "请解释为什么白天的天空是蓝色的。",
        "在海平面上，水在一百摄氏度时沸腾。",
        "孩子们放学后在公园里玩耍。",
        "请把下面的句子翻译成英文。",
        "我们应该为子孙后代保护环境。",
        "他忘了带伞，全身都湿透了。",
        "请用一句话概括这篇文章的主要内容。",
        "博物馆早上九点开门，下午六点关门。",
        "我想预订一张两个人的桌子。",
        "请给出三个提高学习效率的建议。",
        "很多人学习外语是为了旅行或找工作。",
        "小狗在绿色的草地上快乐地奔跑。",
        "图书馆里有很多不同语言的书。",
        "会议推迟到下周四举行。",
        "请给你的经理写一封礼貌的邮件。",
        "良好的沟通在任何团队中都很重要。",
        "长江是中国最长的河流。",
        "请问去火车站怎么走？",
        "面包店的新鲜面包最好吃。",
        "冬天我们喜欢去山里滑雪。",
    ),
    "ar": (
        "كان الجو باردا هذا الصباح، لذلك بقيت في المنزل.",
        "من فضلك اكتب قصيدة قصيرة عن البحر.",
        "عاصمة مصر هي القاهرة.",
        "يغادر القطار إلى المدينة كل عشرين دقيقة.",
        "تطبخ جدتي طعاما لذيذا كل يوم جمعة.",
        "اشرح لماذا تبدو السماء زرقاء في النهار.",
        "يغلي الماء عند مئة درجة مئوية عند مستوى سطح البحر.",
        "يلعب الأطفال في الحديقة بعد المدرسة.",
        "ترجم الجملة التالية إلى اللغة الإنجليزية.",
        "يجب علينا حماية البيئة من أجل الأجيال القادمة.",
        "نسي مظلته فعاد إلى البيت مبللا.",
        "لخص الفكرة الرئيسية للمقال في جملة واحدة.",
        "يفتح المتحف في الساعة التاسعة صباحا.",
        "أود أن أحجز طاولة لشخصين في الساعة السابعة مساء.",
        "اذكر ثلاث نصائح للتركيز أثناء الدراسة.",
        "يتعلم كثير من الناس لغة أجنبية من أجل السفر.",
        "ركض الكلب بسعادة في المرج الأخضر.",
        "توجد في المكتبة كتب بلغات كثيرة.",
        "تم تأجيل الاجتماع إلى يوم الخميس القادم.",
        "اكتب رسالة مهذبة إلى مديرك.",
        "التواصل الجيد مهم في كل فريق.",
        "نهر النيل هو أطول نهر في أفريقيا.",
        "من فضلك، كيف أصل إلى محطة القطار؟",
        "الخبز الطازج من المخبز هو الألذ.",
        "نحب في الشتاء أن نزور الجبال.",
    ),
    "hi": (
        "आज सुबह बहुत ठंड थी, इसलिए मैं घर पर ही रहा।",
        "कृपया समुद्र के बारे में एक छोटी कविता लिखिए।",
        "भारत की राजधानी नई दिल्ली है।",
        "शहर जाने वाली ट्रेन हर बीस मिनट में चलती है।",
        "मेरी दादी हर रविवार को स्वादिष्ट खाना बनाती हैं।",
        "समझाइए कि दिन में आसमान नीला क्यों दिखता है।",
        "समुद्र तल पर पानी सौ डिग्री सेल्सियस पर उबलता है।",
        "बच्चे स्कूल के बाद बगीचे में खेलते हैं।",
        "निम्नलिखित वाक्य का अंग्रेज़ी में अनुवाद कीजिए।",
        "हमें आने वाली पीढ़ियों के लिए पर्यावरण की रक्षा करनी चाहिए।",
        "वह अपना छाता भूल गया और पूरी तरह भीग गया।",
        "लेख के मुख्य विचार को एक वाक्य में संक्षेप में लिखिए।",
        "संग्रहालय सुबह नौ बजे खुलता है।",
        "मैं शाम सात बजे दो लोगों के लिए एक मेज़ बुक करना चाहता हूँ।",
        "पढ़ाई के दौरान ध्यान केंद्रित करने के तीन सुझाव दीजिए।",
        "बहुत से लोग यात्रा करने के लिए विदेशी भाषा सीखते हैं।",
        "कुत्ता हरे मैदान में खुशी से दौड़ रहा था।",
        "पुस्तकालय में कई भाषाओं की किताबें हैं।",
        "बैठक अगले गुरुवार तक के लिए टाल दी गई है।",
        "अपने प्रबंधक को एक विनम्र ईमेल लिखिए।",
        "हर टीम में अच्छा संवाद बहुत ज़रूरी है।",
        "गंगा भारत की सबसे पवित्र नदी मानी जाती है।",
        "कृपया बताइए, रेलवे स्टेशन कैसे जाऊँ?",
        "बेकरी की ताज़ी रोटी सबसे स्वादिष्ट होती है।",
        "सर्दियों में हम पहाड़ों पर घूमने जाना पसंद करते हैं।",
    ),
    "bn": (
        "আজ সকালে খুব ঠান্ডা ছিল, তাই আমি বাড়িতেই ছিলাম।",
        "অনুগ্রহ করে সমুদ্র নিয়ে একটি ছোট কবিতা লিখুন।",
        "বাংলাদেশের রাজধানী ঢাকা।",
        "শহরে যাওয়ার ট্রেন প্রতি বিশ মিনিট পরপর ছাড়ে।",
        "আমার দাদি প্রতি রবিবার মজার খাবার রান্না করেন।",
        "ব্যাখ্যা করুন কেন দিনের বেলায় আকাশ নীল দেখায়।",
        "সমুদ্রপৃষ্ঠে পানি একশো ডিগ্রি সেলসিয়াসে ফোটে।",
        "শিশুরা স্কুলের পরে বাগানে খেলা করে।",
        "নিচের বাক্যটি ইংরেজিতে অনুবাদ করুন।",
        "ভবিষ্যৎ প্রজন্মের জন্য আমাদের পরিবেশ রক্ষা করা উচিত।",
        "সে তার ছাতা ভুলে গিয়েছিল এবং পুরো ভিজে গিয়েছিল।",
        "প্রবন্ধের মূল ভাবটি এক বাক্যে সংক্ষেপে লিখুন।",
        "জাদুঘর সকাল নয়টায় খোলে।",
        "আমি সন্ধ্যা সাতটায় দুজনের জন্য একটি টেবিল বুক করতে চাই।",
        "পড়াশোনার সময় মনোযোগ ধরে রাখার তিনটি পরামর্শ দিন।",
        "অনেক মানুষ ভ্রমণের জন্য বিদেশি ভাষা শেখেন।",
        "কুকুরটি সবুজ মাঠে আনন্দে দৌড়াচ্ছিল।",
        "গ্রন্থাগারে অনেক ভাষার বই আছে।",
        "সভাটি আগামী বৃহস্পতিবার পর্যন্ত পিছিয়ে দেওয়া হয়েছে।",
        "আপনার ব্যবস্থাপককে একটি ভদ্র ইমেইল লিখুন।",
        "প্রতিটি দলে ভালো যোগাযোগ খুব গুরুত্বপূর্ণ।",
        "পদ্মা বাংলাদেশের একটি বড় নদী।",
        "দয়া করে বলুন, রেলস্টেশনে কীভাবে যাব?",
        "বেকারির তাজা রুটি সবচেয়ে সুস্বাদু।",
        "শীতকালে আমরা পাহাড়ে বেড়াতে যেতে ভালোবাসি।",
    ),
}
