"""Arabic first, English second: the desk's words, numbers and dates.

Every string a page shows is a key of `MESSAGES`, with its Arabic and its English (a test
checks that each has both). Flag and purpose labels are not here: they come from the broker's
catalogue (``GET /v1/flags``), so the desk says exactly what the catalogue says.

Numbers and dates follow CLDR for Arabic as written in Iraq (``ar_IQ``), through Babel:
Arabic-Indic digits (٠١٢٣٤٥٦٧٨٩) with the Arabic thousands separator, which is what CLDR gives
as Iraq's default numbering system and what Iraqi ministries print; and the month names used in
Iraq (كانون الثاني، شباط، آذار...), not the Egyptian transliterations (يناير، فبراير...). Babel
supplies the grouping and the month names; its output keeps ASCII digits, which `digits` maps.
Identifiers (a beneficiary ID, a national ID as typed) are codes, not quantities: they are shown
as the registry writes them. Times are shown in the desk's time zone (Asia/Baghdad).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

LANGUAGES = ("ar", "en")
LOCALES = {"ar": "ar_IQ", "en": "en_GB"}
TIME_ZONE = ZoneInfo("Asia/Baghdad")
_ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def digits(text: str, language: str) -> str:
    return text.translate(_ARABIC_DIGITS) if language == "ar" else text


def _system(language: str) -> str:
    # "default": the locale's own numbering system, so Arabic gets its own separators (٬ ٫ ٪).
    return "default" if language == "ar" else "latn"


def number(value: int | float, language: str) -> str:
    text = format_decimal(value, locale=LOCALES[language], numbering_system=_system(language))
    return digits(text, language)


def percent(value: float, language: str) -> str:
    text = format_percent(
        value, "#,##0.#%", locale=LOCALES[language], numbering_system=_system(language)
    )
    return digits(text, language)


def day(value: date | str | None, language: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return digits(format_date(value, format="long", locale=LOCALES[language]), language)


def moment(value: datetime | None, language: str) -> str:
    if value is None:
        return "—"
    local = value.astimezone(TIME_ZONE)
    pattern = "d MMMM y، HH:mm" if language == "ar" else "d MMMM y, HH:mm"
    return digits(format_datetime(local, pattern, locale=LOCALES[language]), language)


def t(key: str, language: str) -> str:
    """The message `key` in `language` (a missing key shows as itself, never a crash)."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry[0] if language == "ar" else entry[1]


# key: (Arabic, English)
MESSAGES: dict[str, tuple[str, str]] = {
    # the layout
    "app.name": ("مكتب الوزارة", "Ministry desk"),
    "app.ministry": ("وزارة العمل والشؤون الاجتماعية", "Ministry of Labour and Social Affairs"),
    "app.footer": (
        "كل مؤشر هنا دلالة تحتاج إلى تحقق، وليس قراراً. لا تظهر هنا بيانات الجهات الشريكة.",
        "Every flag here is an indication to verify, never a decision. No partner's records "
        "are shown here.",
    ),
    "nav.dashboard": ("الرئيسية", "Home"),
    "nav.lookup": ("الاستعلام عن حالة", "Case lookup"),
    "nav.matches": ("المطابقة الجماعية", "Collective match"),
    "nav.roster": ("سجل المستفيدين", "Roster"),
    "nav.staff": ("الموظفون", "Staff"),
    "nav.log": ("سجل المكتب", "Desk log"),
    "nav.audit": ("التدقيق", "Audit"),
    "nav.language": ("English", "العربية"),
    "nav.signout": ("تسجيل الخروج", "Sign out"),
    "nav.signed_in_as": ("المستخدم", "Signed in as"),
    "role.caseworker": ("باحث حالة", "Caseworker"),
    "role.analyst": ("محلل", "Analyst"),
    "role.supervisor": ("مشرف", "Supervisor"),
    "role.auditor": ("مدقق", "Auditor"),
    "source.bank": ("المصارف", "Banks"),
    "source.pension": ("هيئة التقاعد الوطنية", "Pension authority"),
    "source.traffic": ("مديرية المرور العامة", "Traffic directorate"),
    "source.trade": ("وزارة التجارة", "Ministry of Trade"),
    "source.education": ("وزارة التربية", "Ministry of Education"),
    "source.higher_education": ("وزارة التعليم العالي", "Ministry of Higher Education"),
    # sign-in
    "login.title": ("تسجيل الدخول", "Sign in"),
    "login.name": ("اسم المستخدم", "User name"),
    "login.password": ("كلمة المرور", "Password"),
    "login.submit": ("دخول", "Sign in"),
    "login.refused": (
        "لم يتم الدخول: تحقق من الاسم وكلمة المرور. بعد عدة محاولات خاطئة يُقفل الحساب مؤقتاً؛ "
        "اطلب المساعدة من المشرف.",
        "Sign-in refused: check your name and password. After several failed attempts an "
        "account is locked for a while; ask your supervisor for help.",
    ),
    "login.expired": (
        "انتهت الجلسة لعدم الاستخدام. سجّل الدخول من جديد.",
        "Your session ended after a period without use. Please sign in again.",
    ),
    "login.signed_out": ("تم تسجيل الخروج.", "You have signed out."),
    "login.form_expired": (
        "انتهت صلاحية النموذج. أعد المحاولة.",
        "The form had expired. Please try again.",
    ),
    # errors
    "error.403.title": ("غير مسموح", "Not allowed"),
    "error.403.text": (
        "دورك في المكتب لا يسمح بهذه الصفحة أو بهذا الإجراء.",
        "Your role at the desk does not allow this page or this action.",
    ),
    "error.404.title": ("غير موجود", "Not found"),
    "error.404.text": ("لا توجد صفحة بهذا العنوان.", "There is no page at this address."),
    "error.csrf.title": ("طلب مرفوض", "Request refused"),
    "error.csrf.text": (
        "لم يأت هذا النموذج من صفحة المكتب المفتوحة. افتح الصفحة من جديد وأعد المحاولة.",
        "This form did not come from the desk's open page. Open the page again and retry.",
    ),
    "error.broker": (
        "تعذر الحصول على رد من الوسيط",
        "The broker could not answer",
    ),
    "error.back": ("العودة إلى الرئيسية", "Back to home"),
    "error.400.title": ("طلب غير مفهوم", "Request not understood"),
    "error.400.text": (
        "تعذر على المكتب قراءة ما أُرسل، ولم يتغير شيء. افتح الصفحة من جديد وأعد المحاولة.",
        "The desk could not read what was sent, and nothing changed. Open the page again and "
        "retry.",
    ),
    "error.405.title": ("غير مسموح بهذه الطريقة", "Not allowed this way"),
    "error.405.text": (
        "لا تُطلب هذه الصفحة بهذه الطريقة. استعمل أزرار المكتب ونماذجه.",
        "This page is not asked for this way. Use the desk's own buttons and forms.",
    ),
    "error.413.title": ("الملف كبير جداً", "Too large"),
    "error.413.text": (
        "ما أُرسل أكبر من الحد المسموح للمكتب، ولم يُقرأ منه شيء.",
        "What was sent is larger than the desk allows; none of it was read.",
    ),
    # dashboard
    "dashboard.title": ("أهلاً", "Welcome"),
    "dashboard.roster": ("سجل المستفيدين المسجَّل", "Registered roster"),
    "dashboard.no_roster": (
        "لم يُسجَّل سجل المستفيدين لدى الوسيط بعد.",
        "The roster has not been registered with the broker yet.",
    ),
    "dashboard.people": ("المستفيدون", "Beneficiaries"),
    "dashboard.households": ("الأسر", "Households"),
    "dashboard.registered": ("تاريخ التسجيل", "Registered"),
    "dashboard.version": ("الإصدار", "Version"),
    "dashboard.recent": ("آخر المطابقات", "Recent matches"),
    "dashboard.lookup_hint": (
        "للاستعلام عن مستفيد أو أكثر برقم البطاقة الوطنية.",
        "Look up one or a few beneficiaries by national card number.",
    ),
    "dashboard.match_hint": (
        "لمطابقة السجل كله مع جميع الجهات الشريكة دفعة واحدة.",
        "Match the whole roster against every partner at once.",
    ),
    "dashboard.audit_hint": (
        "سجل التدقيق لدى الوسيط: القيود، أثر الوصول إلى شخص، الحالات الشاذة، والتقرير.",
        "The broker's audit log: its entries, a person's trail, anomalies and the report.",
    ),
    # lookup
    "lookup.title": ("الاستعلام عن حالة", "Case lookup"),
    "lookup.ids": ("أرقام البطاقة الوطنية (رقم في كل سطر)", "National card numbers (one a line)"),
    "lookup.ids_help": (
        "تُقبل الأرقام العربية والهندية والمسافات والشرطات. يبقى الرقم في المكتب، ولا يُرسل "
        "إلى الوسيط إلا رمزه المشفّر.",
        "Arabic-Indic digits, spaces and dashes are accepted. The number stays at the desk; "
        "only its keyed token goes to the broker.",
    ),
    "lookup.purpose": ("الغرض", "Purpose"),
    "lookup.submit": ("استعلام", "Look up"),
    "lookup.too_many": ("عدد الأرقام أكبر من المسموح", "More numbers than allowed at once"),
    "lookup.none": ("أدخل رقماً واحداً على الأقل.", "Enter at least one number."),
    "lookup.invalid": (
        "لم يُرسل شيء إلى الوسيط: صحّح الأسطر الآتية.",
        "Nothing was sent to the broker: correct these lines.",
    ),
    "lookup.line": ("السطر", "Line"),
    "reason.empty": ("فارغ", "empty"),
    "reason.bad_character": ("يحتوي على حرف غير رقمي", "holds a character that is not a digit"),
    "reason.wrong_length": ("عدد الأرقام غير صحيح (١٢ رقماً)", "wrong number of digits (12)"),
    "reason.placeholder": ("رقم وهمي متكرر", "a placeholder, one digit repeated"),
    "lookup.number": ("الرقم المُدخل", "Number entered"),
    "lookup.person": ("المستفيد", "Beneficiary"),
    "lookup.beneficiary_id": ("رقم المستفيد", "Beneficiary ID"),
    "lookup.household_id": ("رقم الأسرة", "Household ID"),
    "lookup.not_on_roster": (
        "ليس في سجل المستفيدين: لا يعطي الوسيط مؤشرات لمن هم خارج السجل.",
        "Not on the roster: the broker gives no flags for people off the ministry's roster.",
    ),
    "lookup.no_flags": (
        "لا توجد مؤشرات لدى الجهات الشريكة.",
        "No partner holds an indication about this beneficiary.",
    ),
    "lookup.indication": (
        "مؤشر يحتاج إلى تحقق",
        "Indication to verify",
    ),
    "lookup.indication_help": (
        "تشير سجلات جهة شريكة إلى ما يلي. تحقّق منه ميدانياً قبل أي قرار.",
        "A partner's records suggest the following. Verify it before any decision.",
    ),
    "lookup.source": ("الجهة", "Source"),
    "lookup.as_of": ("بتاريخ", "As of"),
    "lookup.results": ("النتائج", "Results"),
    # matches
    "matches.title": ("المطابقة الجماعية", "Collective match"),
    "matches.start": ("بدء مطابقة", "Start a match"),
    "matches.flags": ("المؤشرات (اتركها كلها لاختيار الكل)", "Flags (leave all for every flag)"),
    "matches.submit": ("بدء المطابقة", "Start the match"),
    "matches.history": ("المطابقات", "Matches"),
    "matches.number": ("رقم", "No."),
    "matches.by": ("بواسطة", "By"),
    "matches.started": ("البدء", "Started"),
    "matches.state": ("الحالة", "State"),
    "matches.flagged": ("مستفيدون لديهم مؤشرات", "Flagged beneficiaries"),
    "matches.none": ("لا توجد مطابقات بعد.", "No matches yet."),
    "matches.need_roster": (
        "سجّل سجل المستفيدين أولاً.",
        "Register the roster first.",
    ),
    "state.running": ("قيد التنفيذ", "Running"),
    "state.ready": ("جاهزة", "Ready"),
    "state.current": ("الحالي", "Current"),
    "state.replaced": ("مستبدل", "Replaced"),
    "state.failed": ("فشلت", "Failed"),
    "stage.submitted": ("أُرسلت إلى الوسيط", "Sent to the broker"),
    "stage.queued": ("في الانتظار لدى الوسيط", "Waiting at the broker"),
    "stage.matching": ("الوسيط يطابق", "The broker is matching"),
    "stage.resolving": ("إعداد القوائم محلياً", "Making the lists here"),
    "stage.done": ("انتهت", "Done"),
    "stage.reading": ("قراءة الملف وحساب الرموز", "Reading the file and computing tokens"),
    "stage.sending": ("الإرسال إلى الوسيط", "Sending to the broker"),
    # one match
    "match.title": ("المطابقة رقم", "Match no."),
    "match.purpose": ("الغرض", "Purpose"),
    "match.progress": ("التقدم", "Progress"),
    "match.summary": ("الخلاصة", "Summary"),
    "match.flagged_beneficiaries": ("مستفيدون لديهم مؤشرات", "Flagged beneficiaries"),
    "match.flagged_households": ("أسر لديها مؤشرات", "Flagged households"),
    "match.of_roster": ("من أصل", "of"),
    "match.per_flag": ("حسب المؤشر", "By flag"),
    "match.per_source": ("حسب الجهة", "By source"),
    "match.per_governorate": ("حسب المحافظة", "By governorate"),
    "match.flag": ("المؤشر", "Flag"),
    "match.source": ("الجهة", "Source"),
    "match.governorate": ("المحافظة", "Governorate"),
    "match.beneficiaries": ("مستفيدون", "Beneficiaries"),
    "match.households": ("أسر", "Households"),
    "match.on_roster": ("في السجل", "On the roster"),
    "match.why_more": (
        "مجموع الأعداد حسب الجهة أو حسب المؤشر أكبر من العدد الكلي، لأن المستفيد الذي تذكره "
        "جهتان، أو الذي لديه مؤشران، يُحسب مرة تحت كل منهما:",
        "The counts by source or by flag add up to more than the total: a beneficiary that two "
        "partners report, or who has two flags, is counted once under each.",
    ),
    "match.several_sources": (
        "مستفيدون ذكرتهم أكثر من جهة",
        "beneficiaries reported by more than one partner",
    ),
    "match.several_flags": (
        "مستفيدون لديهم أكثر من مؤشر",
        "beneficiaries with more than one flag",
    ),
    "match.downloads": ("قوائم التحقق الميداني", "Lists for field verification"),
    "match.beneficiary_list": ("قائمة المستفيدين", "Beneficiary list"),
    "match.household_list": ("قائمة الأسر", "Household list"),
    "match.download_note": (
        "كل صف مؤشر يحتاج إلى تحقق ميداني، وليس قراراً. القوائم من سجل الوزارة نفسها.",
        "Each row is an indication for field verification, never a decision. The lists come "
        "from the ministry's own roster.",
    ),
    "match.failed": ("فشلت المطابقة", "The match failed"),
    "match.as_of": ("تاريخ بيانات الجهة", "Partner data as of"),
    # roster
    "roster.title": ("سجل المستفيدين", "Roster"),
    "roster.current": ("السجل الحالي", "Current roster"),
    "roster.register": ("تسجيل أو تحديث السجل", "Register or refresh the roster"),
    "roster.file": ("ملف السجل (CSV بترميز UTF-8)", "Roster extract (UTF-8 CSV)"),
    "roster.file_help": (
        "يُقرأ الملف هنا وتُحسب رموز المستفيدين في المكتب؛ لا يُرسل إلى الوسيط إلا الرموز. "
        "إذا رُفض الملف لا يتغير شيء.",
        "The file is read here and the beneficiaries' tokens computed at the desk; only the "
        "tokens go to the broker. If the file is refused, nothing changes.",
    ),
    "roster.submit": ("تسجيل السجل", "Register the roster"),
    "roster.again": ("إعادة تسجيل الملف الحالي", "Register the current file again"),
    "roster.history": ("عمليات التسجيل", "Registrations"),
    "roster.rows": ("الصفوف", "Rows"),
    "roster.rejected": ("الصفوف المرفوضة", "Rejected rows"),
    "roster.no_file": ("اختر ملفاً.", "Choose a file."),
    # staff
    "staff.title": ("الموظفون", "Staff"),
    "staff.add": ("إضافة موظف", "Add a member of staff"),
    "staff.name": ("الاسم", "Name"),
    "staff.role": ("الدور", "Role"),
    "staff.password": ("كلمة مرور أولية (١٠ أحرف على الأقل)", "First password (10+ characters)"),
    "staff.submit": ("إضافة", "Add"),
    "staff.state": ("الحالة", "State"),
    "staff.active": ("فعّال", "Active"),
    "staff.disabled": ("موقوف", "Disabled"),
    "staff.locked": ("مقفل مؤقتاً", "Locked for now"),
    "staff.disable": ("إيقاف", "Disable"),
    "staff.enable": ("تفعيل", "Enable"),
    "staff.unlock": ("رفع القفل", "Unlock"),
    "staff.last_sign_in": ("آخر دخول", "Last sign-in"),
    "staff.added": ("تمت إضافة الموظف.", "The member of staff was added."),
    "staff.error.invalid_name": (
        "الاسم من ٢ إلى ٦٤ حرفاً.",
        "A name is 2 to 64 characters.",
    ),
    "staff.error.weak_password": (
        "كلمة المرور قصيرة: ١٠ أحرف على الأقل.",
        "The password is too short: at least 10 characters.",
    ),
    "staff.error.user_exists": ("يوجد موظف بهذا الاسم.", "There is already someone by that name."),
    "staff.error.invalid_role": ("دور غير معروف.", "Unknown role."),
    "staff.error.user_not_found": ("لا يوجد موظف بهذا الاسم.", "No one has that name."),
    "staff.error.self": ("لا يمكنك إيقاف حسابك.", "You cannot disable your own account."),
    # log
    "log.title": ("سجل المكتب", "Desk log"),
    "log.when": ("الوقت", "When"),
    "log.who": ("الموظف", "Who"),
    "log.what": ("الإجراء", "What"),
    "log.outcome": ("النتيجة", "Outcome"),
    "log.details": ("التفاصيل", "Details"),
    # the auditor's console (auditing.py, witness.py, anomalies.py, auditpdf.py)
    "audit.title": ("وحدة التدقيق", "Auditor's console"),
    "audit.text": (
        "يتحقق المكتب من سجل التدقيق لدى الوسيط في كل زيارة: يحتفظ بآخر نقطة تحقق قبلها، "
        "ويطلب الحالية مع إثبات الاتساق، ويتحقق من توقيعها بالمفتاح المثبّت.",
        "On every visit the desk checks the broker's audit log: it keeps the last checkpoint "
        "it accepted, fetches the current one with a consistency proof, and checks its "
        "signature with the pinned key.",
    ),
    # cases (issue 15): the queue, a case, its steps, the notice letter
    "nav.cases": ("الحالات", "Cases"),
    "cases.title": ("الحالات", "Cases"),
    "cases.intro": (
        "كل حالة مؤشر يُتحقق منه ميدانياً، ثم يُبلَّغ صاحبه ويُسمع رده قبل أي قرار.",
        "Each case is an indication to verify in the field; the person is then notified and "
        "heard before any decision.",
    ),
    "cases.m.assigned": ("تم إسناد الحالات.", "The cases were assigned."),
    "cases.m.opened": ("تم فتح الحالات.", "The cases were opened."),
    "cases.m.opened_one": ("تم فتح الحالة.", "The case was opened."),
    "cases.skipped": (
        "لم تُفتح حالات لمن لديهم حالة مفتوحة",
        "No case was opened for those who have one open",
    ),
    "cases.refused": ("رفض الوسيط فتح حالات", "The broker refused to open cases"),
    "cases.m.stepped": ("تم تسجيل الخطوة لدى الوسيط.", "The step was recorded at the broker."),
    "cases.m.noted": ("حُفظت الملاحظة في المكتب.", "The note was saved at the desk."),
    "cases.state": ("الحالة", "State"),
    "cases.open": ("المفتوحة", "Open"),
    "cases.all": ("الكل", "All"),
    "cases.any": ("الكل", "Any"),
    "cases.mine": ("المسندة إليّ فقط", "Assigned to me only"),
    "cases.filter": ("تصفية", "Filter"),
    "cases.previous": ("الصفحة السابقة", "Previous page"),
    "cases.next": ("الصفحة التالية", "Next page"),
    "cases.none": ("لا توجد حالات بهذه الشروط.", "No cases match."),
    "cases.choose": ("اختيار الحالة", "Choose case"),
    "cases.number": ("رقم الحالة", "Case"),
    "cases.case": ("الحالة", "Case"),
    "cases.assigned": ("الباحث المسؤول", "Caseworker"),
    "cases.due": ("الموعد", "Due"),
    "cases.overdue": ("انتهت مدة الرد", "Response period over"),
    "cases.lapsing": ("تسقط قريباً", "Lapsing soon"),
    "cases.assign_to": ("إسناد المختارة إلى", "Assign the chosen cases to"),
    "cases.assign": ("إسناد", "Assign"),
    "cases.open_title": ("فتح حالات من قائمة المطابقة", "Open cases from the match's list"),
    "cases.open_help": (
        "اختر المستفيدين الذين تُفتح لهم حالات تحقق. لا يُرسل إلى الوسيط إلا الرمز ورموز "
        "المؤشرات؛ الأسماء تبقى في المكتب.",
        "Choose the beneficiaries to open verification cases for. Only the token and the flag "
        "codes go to the broker; names stay at the desk.",
    ),
    "cases.none_listed": ("لا يوجد مستفيدون بهذه الشروط.", "No beneficiaries match."),
    "cases.more": (
        "تظهر أول ٢٠٠ فقط؛ ضيّق التصفية لرؤية البقية",
        "Only the first 200 are shown; narrow the filter to see the rest",
    ),
    "cases.open_submit": ("فتح حالات للمختارين", "Open cases for the chosen"),
    "cases.open_one": ("فتح حالة تحقق", "Open a verification case"),
    "case.title": ("الحالة رقم", "Case no."),
    "case.state.indication": ("مؤشر", "Indication"),
    "case.state.verifying": ("قيد التحقق", "Verifying"),
    "case.state.confirmed": ("تأكد", "Confirmed"),
    "case.state.refuted": ("لم يتأكد", "Refuted"),
    "case.state.notified": ("أُبلغ", "Notified"),
    "case.state.responded": ("ردّ", "Responded"),
    "case.state.decided": ("صدر القرار", "Decided"),
    "case.state.closed": ("مغلقة", "Closed"),
    "case.state.lapsed": ("سقطت", "Lapsed"),
    "case.reason": ("السبب", "Reason"),
    "case.reason.not_the_person": ("ليس الشخص نفسه", "Not the person"),
    "case.reason.source_outdated": ("بيانات الجهة قديمة", "The source's data is outdated"),
    "case.reason.rule_not_met": ("لا تنطبق القاعدة", "The rule is not met"),
    "case.reason.other": ("سبب آخر", "Other"),
    "case.reason.upheld": ("تأييد المؤشر", "Upheld"),
    "case.reason.withdrawn": ("سحب المؤشر", "Withdrawn"),
    "case.decision": ("القرار", "Decision"),
    "case.person_gone": (
        "لم يعد سجل المستفيدين الذي فُتحت عليه الحالة محفوظاً في المكتب.",
        "The roster the case was opened on is no longer held by the desk.",
    ),
    "case.response_due": ("آخر موعد للرد", "Response due"),
    "case.lapses_at": ("تسقط في", "Lapses"),
    "case.attention.overdue": (
        "انتهت مدة الرد ولم يُسجَّل قرار: يمكن اتخاذ القرار الآن.",
        "The response period is over and no decision is recorded: decide now.",
    ),
    "case.attention.lapsing": (
        "ستسقط هذه الحالة قريباً إن لم يبدأ التحقق.",
        "This case lapses soon unless verification starts.",
    ),
    "case.opened": ("فُتحت", "Opened"),
    "case.origin.match": ("من مطابقة جماعية", "from a collective match"),
    "case.origin.lookup": ("من استعلام", "from a lookup"),
    "case.notice_print": ("طباعة خطاب الإشعار", "Print the notice letter"),
    "case.next": ("الخطوة التالية", "Next step"),
    "case.no_next": ("لا خطوة أخرى لهذه الحالة.", "This case has no further step."),
    "case.not_yours_hint": (
        "هذه الحالة مسندة إلى باحث آخر أو غير مسندة: لا يحركها إلا من أُسندت إليه أو المشرف.",
        "This case is assigned to another caseworker, or to no one: only its caseworker or a "
        "supervisor moves it.",
    ),
    "case.step.verifying": ("بدء التحقق الميداني", "Start the field verification"),
    "case.step.confirmed": ("التحقق أكّد المؤشر", "Verification confirmed it"),
    "case.step.refuted": ("التحقق لم يؤكد المؤشر", "Verification refuted it"),
    "case.step.notified": ("أُرسل الإشعار", "The notice was sent"),
    "case.step.responded": ("تسلمنا رد الشخص", "The person responded"),
    "case.step.decided": ("تسجيل القرار", "Record the decision"),
    "case.step.closed": ("إغلاق الحالة", "Close the case"),
    "case.step_help.verifying": (
        "إعادة المسح الميداني للأسرة قبل أي إجراء.",
        "The household's field re-survey, before anything else.",
    ),
    "case.step_help.confirmed": (
        "نتيجة إعادة المسح: المؤشر صحيح ويخص هذا الشخص.",
        "The re-survey's outcome: the indication is right and about this person.",
    ),
    "case.step_help.refuted": (
        "نتيجة إعادة المسح: المؤشر غير صحيح، مع السبب.",
        "The re-survey's outcome: the indication is wrong, with the reason.",
    ),
    "case.step_help.notified": (
        "سُلّم خطاب الإشعار؛ تبدأ مدة الرد من الآن.",
        "The notice letter was handed over; the response period starts now.",
    ),
    "case.step_help.responded": (
        "قدّم الشخص رده (سجّل مضمونه في الملاحظات).",
        "The person responded (write what they said in the notes).",
    ),
    "case.step_help.decided": (
        "لا قرار بالتأييد قبل انتهاء مدة الرد إلا بعد رد الشخص.",
        "No upheld decision before the response is due unless the person has responded.",
    ),
    "case.step_help.closed": ("انتهى العمل على الحالة.", "The work on the case is done."),
    "case.history": ("سجل الحالة لدى الوسيط", "The case's history at the broker"),
    "case.no_history": ("لا يتوفر السجل الآن.", "The history is not available now."),
    "case.notes": ("ملاحظات", "Notes"),
    "case.notes_help": (
        "تُحفظ الملاحظات في قاعدة بيانات المكتب وحدها ولا تُرسل إلى الوسيط.",
        "Notes are kept in the desk's own database only; they never go to the broker.",
    ),
    "case.note_new": ("ملاحظة جديدة", "New note"),
    "case.note_add": ("حفظ الملاحظة", "Save the note"),
    "case.back": ("العودة إلى الحالات", "Back to the cases"),
    "case.back_to_case": ("العودة إلى الحالة", "Back to the case"),
    "case.error.title": ("لم تُنفذ الخطوة", "Not done"),
    "case.error.broker": ("رفض الوسيط الخطوة", "The broker refused the step"),
    "case.error.invalid": ("طلب غير صالح.", "An invalid request."),
    "case.error.not_yours": (
        "هذه الحالة مسندة إلى باحث آخر: لا يمكنك تحريكها. اطلب من المشرف إسنادها إليك.",
        "This case is assigned to another caseworker: you cannot move it. Ask a supervisor "
        "to assign it to you.",
    ),
    "case.error.forbidden": ("دورك لا يسمح بهذا.", "Your role does not allow this."),
    "case.error.none_chosen": ("لم تختر شيئاً.", "Nothing was chosen."),
    "case.error.too_many": ("المختار أكثر من ٢٠٠.", "More than 200 were chosen."),
    "case.error.not_a_caseworker": (
        "تُسند الحالات إلى باحث فعّال فقط.",
        "Cases go to an active caseworker only.",
    ),
    "case.error.case_finished": (
        "حالة مغلقة أو ساقطة لا تُسند.",
        "A finished case is not assigned.",
    ),
    "case.error.invalid_state": ("خطوة غير معروفة.", "An unknown step."),
    "case.error.invalid_reason": (
        "اختر السبب أو القرار من القائمة.",
        "Choose the reason or the decision from the list.",
    ),
    "case.error.empty_note": ("الملاحظة فارغة.", "The note is empty."),
    "case.error.note_too_long": ("الملاحظة أطول من ٤٠٠٠ حرف.", "The note is over 4000 characters."),
    "case.error.no_lookup": (
        "لم يذكر الوسيط رقم الاستعلام: أعد الاستعلام.",
        "The broker did not name the lookup: look the person up again.",
    ),
    "case.error.invalid_flags": (
        "المؤشرات ليست مؤشرات الاستعلام.",
        "Those are not the lookup's flags.",
    ),
    "case.error.match_too_old": (
        "قوائم هذه المطابقة أقدم من الحالات: أعد المطابقة.",
        "This match's lists predate cases: run the match again.",
    ),
    "case.error.no_notice": (
        "يُطبع الإشعار بعد تسجيل إرساله.",
        "The notice is printed once it is recorded as sent.",
    ),
    "case.error.unreachable": ("تعذر الوصول إلى الوسيط.", "The broker cannot be reached."),
    "case.error.tls": ("رُفض الاتصال الآمن بالوسيط.", "The secure connection to the broker failed."),
    "case.error.response_not_due": (
        "لا يصدر قرار بالتأييد قبل انتهاء مدة الرد، إلا إذا ردّ الشخص.",
        "No upheld decision before the response is due, unless the person has responded.",
    ),
    "case.error.case_lapsed": (
        "سقطت هذه الحالة لعدم البدء بها في الوقت المحدد، ولا يمكن العمل عليها.",
        "This case lapsed (not taken up in time) and may not be acted on.",
    ),
    "case.error.roster_gone": (
        "لم يعد المكتب يحتفظ بنسخة سجل المستفيدين هذه: أعد الاستعلام أو المطابقة.",
        "The desk no longer holds that version of the roster: look the person up or run the "
        "match again.",
    ),
    "case.error.case_closed": ("هذه الحالة مغلقة.", "This case is closed."),
    "case.error.illegal_transition": (
        "هذه الخطوة لا تأتي بعد حالة الحالة الآن.",
        "That step does not follow the case's current state.",
    ),
    "case.error.case_exists": (
        "توجد حالة مفتوحة لهذا الشخص.",
        "There is already an open case for this person.",
    ),
    "case.error.case_not_found": ("لا يعرف الوسيط هذه الحالة.", "The broker knows no such case."),
    "case.error.not_in_result": (
        "هذا الشخص أو المؤشر ليس في نتيجة المطابقة أو الاستعلام.",
        "That person or flag is not in the match's result or the lookup's answer.",
    ),
    "case.error.flag_no_longer_current": (
        "لم تعد الجهة تذكر هذا المؤشر: أعد الاستعلام.",
        "The source no longer asserts that flag: look the person up again.",
    ),
    "case.error.results_expired": (
        "حُذفت نتائج هذه المطابقة لدى الوسيط بعد انتهاء مدة حفظها: أعد المطابقة.",
        "The broker deleted this match's results after their retention: run the match again.",
    ),
    "case.error.result_too_old": (
        "النتيجة أقدم من مدة سقوط المؤشر: أعد المطابقة أو الاستعلام.",
        "The result is older than an indication's lapse period: run the match or lookup again.",
    ),
    "case.error.lookup_not_found": (
        "لا يعرف الوسيط هذا الاستعلام: أعد الاستعلام.",
        "The broker knows no such lookup: look the person up again.",
    ),
    "case.error.not_verified": (
        "لا قرار قبل التحقق.",
        "No decision without verification.",
    ),
    "rates.title": ("كيف كانت نتائج التحقق", "How the flags fared"),
    "rates.link": ("نسب التأكيد حسب المؤشر والجهة", "Confirmation rates by flag and source"),
    "rates.intro": (
        "من حالات الوزارة نفسها: كم مؤشراً تأكد بالتحقق الميداني وكم لم يتأكد، وسبب ذلك. "
        "الجهة التي تكثر مؤشراتها غير الصحيحة لسبب «ليس الشخص نفسه» لديها مشكلة في جودة البيانات.",
        "From the ministry's own cases: how many indications field verification confirmed and "
        "refuted, and why. A source whose flags are often refuted as not the person has a "
        "data quality problem.",
    ),
    "rates.per_flag": ("حسب المؤشر", "By flag"),
    "rates.per_source": ("حسب الجهة", "By source"),
    "rates.rate": ("نسبة التأكيد", "Confirmation rate"),
    "rates.none": ("لم يُسجَّل أي تحقق بعد.", "No verification recorded yet."),
    "notice.title": ("إشعار بمؤشر يخص الإعانة الاجتماعية", "Notice about your social benefit"),
    "notice.ref": ("رقم الحالة", "Case no."),
    "notice.date": ("التاريخ", "Date"),
    "notice.to": ("إلى السيد/السيدة", "To"),
    "notice.body1": (
        "وصلت إلى الوزارة من جهة حكومية شريكة بيانات تشير إلى ما يأتي، وقد تحققت منها الوزارة "
        "ميدانياً:",
        "A partner government agency's records, which the ministry has verified in the field, "
        "indicate the following:",
    ),
    "notice.body2": (
        "هذا إشعار وليس قراراً. يحق لكم الرد وتقديم ما يثبت خلاف ذلك إلى دائرة الحماية "
        "الاجتماعية في محافظتكم.",
        "This is a notice, not a decision. You may respond and show that it is not so, at the "
        "social protection office of your governorate.",
    ),
    "notice.deadline": ("آخر موعد للرد", "Respond by"),
    "notice.body3": (
        "لن يُتخذ أي قرار بشأن إعانتكم قبل هذا التاريخ ما لم تقدموا ردكم، وسيُنظر في ردكم قبل "
        "القرار.",
        "No decision about your benefit will be taken before that date unless you respond, "
        "and your response will be considered before any decision.",
    ),
    "notice.sign": (
        "وزارة العمل والشؤون الاجتماعية — هيئة الحماية الاجتماعية",
        "Ministry of Labour and Social Affairs — Social Protection Commission",
    ),
    "notice.print_hint": (
        "اطبع الصفحة: الخطاب بالعربية ثم بالإنكليزية، كل منهما في صفحة.",
        "Print the page: the letter in Arabic, then in English, each on its own page.",
    ),
    "audit.font_missing": (
        "لا يوجد على جهاز المكتب خط يدعم العربية لإعداد ملف PDF (ثبّت fonts-noto-core)؛ "
        "اطبع الصفحة بدلاً منه.",
        "The desk's machine has no font with Arabic to make the PDF (install fonts-noto-core); "
        "print the page instead.",
    ),
    "nav.audit_entries": ("قيود السجل", "Log entries"),
    "nav.audit_person": ("أثر شخص", "A person's trail"),
    "nav.audit_anomalies": ("الحجم والحالات الشاذة", "Volume and anomalies"),
    "nav.audit_report": ("التقرير", "Report"),
    "audit.witness.verified": ("تم التحقق من السجل حتى", "Verified up to"),
    "audit.witness.entries_at": ("قيداً في", "entries at"),
    "audit.witness.alarm": (
        "إنذار: سجل التدقيق لدى الوسيط لم يجتز التحقق",
        "Alarm: the broker's audit log failed the witness check",
    ),
    "audit.witness.alarm_help": (
        "يبقى الإنذار حتى يقرّ به مدقق ويذكر السبب؛ يُسجَّل الإقرار في سجل المكتب.",
        "The alarm stays until an auditor acknowledges it with a reason; the acknowledgement "
        "is recorded in the desk's log.",
    ),
    "audit.witness.unchecked": ("تعذر التحقق من السجل الآن", "The log could not be checked now"),
    "audit.witness.never": ("لم يُتحقق من السجل بعد", "The log has not been checked yet"),
    "audit.reason.rollback": ("تراجع السجل", "The log rolled back"),
    "audit.reason.fork": ("تفرّع السجل", "The log forked"),
    "audit.reason.inconsistent": ("سجل غير متسق", "An inconsistent log"),
    "audit.reason.unknown_key": ("موقّع بمفتاح آخر", "Signed by another key"),
    "audit.reason.bad_signature": ("توقيع غير صالح", "A bad signature"),
    "audit.reason.wrong_origin": ("سجل آخر", "Another log"),
    "audit.reason.malformed_note": ("نقطة تحقق تالفة", "A malformed checkpoint"),
    "audit.reason.malformed_checkpoint": ("نقطة تحقق تالفة", "A malformed checkpoint"),
    "audit.reason.malformed_key": ("مفتاح تالف", "A malformed key"),
    "audit.reason.bad_state": (
        "سجل المكتب لنقطة التحقق عُدِّل",
        "The desk's own record of the log was altered",
    ),
    "audit.ack.title": ("الإقرار بالإنذار", "Acknowledge the alarm"),
    "audit.ack.reason": ("السبب (١٠ أحرف على الأقل)", "Reason (10+ characters)"),
    "audit.ack.submit": ("إقرار", "Acknowledge"),
    "audit.ack_reason": (
        "اذكر سبب الإقرار (١٠ أحرف على الأقل).",
        "Give the reason for the acknowledgement (at least 10 characters).",
    ),
    "audit.ack_unknown": ("لا يوجد إنذار مفتوح بهذا الرقم.", "No open alarm has that number."),
    "audit.verify.title": ("التحقق دون اتصال من نسخة مصدّرة", "Offline verification of an export"),
    "audit.verify.help": (
        "ملفا entries.jsonl و checkpoints.jsonl من matchhub audit export. يُتحقق منهما هنا "
        "بالمفتاح المثبّت وبآخر نقطة تحقق قبلها المكتب.",
        "entries.jsonl and checkpoints.jsonl from `matchhub audit export`. They are verified "
        "here, with the pinned key and against the last checkpoint the desk accepted.",
    ),
    "audit.verify.entries": ("ملف القيود", "Entries file"),
    "audit.verify.checkpoints": ("ملف نقاط التحقق", "Checkpoints file"),
    "audit.verify.submit": ("تحقق", "Verify"),
    "audit.verify.files": ("اختر الملفين.", "Choose both files."),
    "audit.verify.no_key": (
        "لا يوجد مفتاح تحقق مثبّت بعد: زر أي صفحة تدقيق أولاً.",
        "No verifier key is pinned yet: visit any audit page first.",
    ),
    "audit.verify.ok": ("النسخة سليمة", "The export verifies"),
    "audit.verify.failed": ("النسخة لا تجتاز التحقق", "The export does not verify"),
    "audit.verify.saved": (
        "وتحتوي على التاريخ الذي قبله المكتب.",
        "and holds the history the desk accepted.",
    ),
    "audit.bad_date": ("تاريخ غير صالح: استخدم السنة-الشهر-اليوم.", "Not a date: use YYYY-MM-DD."),
    "audit.period_order": (
        "بداية المدة بعد نهايتها.",
        "The period starts after it ends.",
    ),
    "audit.period_long": ("المدة أطول من المسموح.", "The period is longer than allowed."),
    "audit.bad_agency": ("رمز الجهة غير صالح.", "Not an agency code."),
    "audit.bad_end_user": (
        "المعرّف المستعار للموظف غير صالح (مثل du-...).",
        "Not a staff member's pseudonym (like du-...).",
    ),
    "audit.bad_route": ("المسار غير صالح (مثل /v1/lookups).", "Not a route (like /v1/lookups)."),
    "audit.bad_error": ("رمز الخطأ غير صالح.", "Not an error code."),
    "audit.bad_outcome": ("النتيجة غير معروفة.", "Unknown outcome."),
    "audit.bad_cursor": ("موضع الصفحة غير صالح.", "Not a page position."),
    "audit.person.title": ("أثر الوصول إلى شخص", "Every access to one person"),
    "audit.person.who": ("الرقم الوطني أو الرمز", "National ID or token"),
    "audit.person.help": (
        "يُحوَّل الرقم الوطني إلى رمز هنا بمفتاح المطابقة لدى المكتب؛ لا يغادر الرقم المكتب.",
        "A national ID is turned into its token here, with the office's matching key; the ID "
        "never leaves the desk.",
    ),
    "audit.person.help_no_key": (
        "لا يحمل هذا المكتب مفتاح مطابقة: أدخل رمز الشخص (٦٤ حرفاً ست عشرياً).",
        "This desk holds no matching key: enter the person's token (64 hex characters).",
    ),
    "audit.person.submit": ("عرض الأثر", "Show the trail"),
    "audit.person.none": ("لا يوجد أي وصول إلى هذا الشخص.", "No access to this person."),
    "audit.person.summary": ("مرات الوصول", "Accesses"),
    "audit.person.staff": ("موظفون مختلفون", "Different staff members"),
    "audit.person.bad_token": (
        "الرمز ٦٤ حرفاً ست عشرياً بالضبط.",
        "A token is exactly 64 hexadecimal characters.",
    ),
    "audit.person.no_key": (
        "لا يحمل هذا المكتب مفتاح مطابقة، فلا يمكنه تحويل رقم وطني: أدخل رمزاً.",
        "This desk holds no matching key, so it cannot turn a national ID into a token: "
        "enter a token.",
    ),
    "audit.person.bad_id": ("ليس رقماً وطنياً صالحاً.", "Not a valid national ID."),
    "audit.entries.title": ("قيود سجل التدقيق", "Audit log entries"),
    "audit.apply": ("تطبيق", "Apply"),
    "audit.next": ("الأقدم", "Older"),
    "audit.newest": ("الأحدث", "Newest"),
    "audit.seq": ("رقم القيد", "Entry"),
    "audit.when": ("الوقت", "When"),
    "audit.agency": ("الجهة", "Agency"),
    "audit.end_user": ("الموظف (مستعار)", "Staff member (pseudonym)"),
    "audit.route": ("المسار", "Route"),
    "audit.outcome": ("النتيجة", "Outcome"),
    "audit.outcome.any": ("الكل", "Any"),
    "audit.outcome.accepted": ("مقبول", "Accepted"),
    "audit.outcome.refused": ("مرفوض", "Refused"),
    "audit.error": ("رمز الخطأ", "Error code"),
    "audit.from": ("من", "From"),
    "audit.to": ("إلى", "To"),
    "audit.purpose": ("الغرض", "Purpose"),
    "audit.size": ("حجم الإجابة", "Answer size"),
    "audit.size_help": (
        "أشخاص في الطلب / منهم في السجل / مؤشرات",
        "people asked / on the roster / flags",
    ),
    "audit.count": ("العدد", "Count"),
    "audit.none": ("لا شيء.", "None."),
    "audit.period": ("المدة", "Period"),
    "audit.entries_count": ("القيود", "Entries"),
    "audit.lookups_count": ("الاستعلامات", "Lookups"),
    "audit.refused_count": ("الطلبات المرفوضة", "Refused requests"),
    "audit.people": ("أشخاص استُعلم عنهم", "People looked up"),
    "audit.subject": ("الشخص (بداية ملخصه المفتاحي)", "Person (start of their keyed digest)"),
    "audit.truncated": (
        "لدى هذا الشخص وصول أكثر مما يُعرض في صفحة واحدة؛ المعروض هو الأوائل فقط.",
        "This person has more accesses than one page shows; the first ones are shown.",
    ),
    "audit.more_rows": ("صفوف أخرى في الصفحة", "more rows on the page"),
    "audit.anomalies.title": ("الحجم والحالات الشاذة", "Volume and anomalies"),
    "audit.chart.days": ("الطلبات في اليوم", "Requests per day"),
    "audit.chart.agencies": ("الطلبات لكل جهة", "Requests per agency"),
    "audit.chart.users": ("الطلبات لكل موظف", "Requests per staff member"),
    "audit.heavy.title": ("موظفون يستعلمون أكثر بكثير من زملائهم", "Staff far above their peers"),
    "audit.heavy.reasoning": (
        "يُدرج الموظف إذا زاد عدد الأشخاص الذين استعلم عنهم على {factor} ضعف وسيط زملائه في "
        "الجهة نفسها، وبلغ {minimum} على الأقل.",
        "A staff member is listed when the people they looked up exceed {factor} times the "
        "median of their peers at the same agency, and number at least {minimum}.",
    ),
    "audit.heavy.median": ("وسيط الزملاء", "Peers' median"),
    "audit.heavy.peers": ("الزملاء", "Peers"),
    "audit.heavy.ratio": ("النسبة", "Ratio"),
    "audit.hours.title": ("استعلامات خارج أوقات الدوام", "Lookups outside office hours"),
    "audit.hours.when": ("متى", "When"),
    "audit.weekday.1": ("الاثنين", "Monday"),
    "audit.weekday.2": ("الثلاثاء", "Tuesday"),
    "audit.weekday.3": ("الأربعاء", "Wednesday"),
    "audit.weekday.4": ("الخميس", "Thursday"),
    "audit.weekday.5": ("الجمعة", "Friday"),
    "audit.weekday.6": ("السبت", "Saturday"),
    "audit.weekday.7": ("الأحد", "Sunday"),
    "audit.hours.reasoning": (
        "أوقات الدوام من الساعة {start} إلى {end} بتوقيت بغداد، من الأحد إلى الخميس.",
        "Office hours are {start}:00 to {end}:00 Baghdad time, Sunday to Thursday.",
    ),
    "audit.widely.title": ("أشخاص استعلم عنهم موظفون كثيرون", "People looked up by many staff"),
    "audit.widely.reasoning": (
        "يُدرج الشخص إذا استعلم عنه {many} موظفين مختلفين أو أكثر في المدة.",
        "A person is listed when {many} or more different staff members looked them up in "
        "the period.",
    ),
    "audit.widely.staff": ("عدد الموظفين", "Staff members"),
    "audit.report.title": ("تقرير التدقيق", "Audit report"),
    "audit.report.made": ("أُعدّ في", "Made at"),
    "audit.report.per_agency": ("الطلبات لكل جهة", "Requests per agency"),
    "audit.report.per_purpose": ("الطلبات المقبولة لكل غرض", "Accepted requests per purpose"),
    "audit.report.refused": ("الطلبات المرفوضة حسب رمز الخطأ", "Refused requests by error code"),
    "audit.report.checkpoint": (
        "نقطة التحقق الموقّعة التي تم التحقق بالاستناد إليها",
        "The signed checkpoint verified against",
    ),
    "audit.report.pdf": ("تنزيل PDF", "Download the PDF"),
    "audit.report.print": (
        "للطباعة: استخدم أمر الطباعة في المتصفح.",
        "To print: use the browser's Print.",
    ),
    "audit.show": ("عرض", "Show"),
}
