"""The page's words in English and Chinese, and the choice between them.

The language is the ``clipline_lang`` cookie when a person picked one, else the best match in
``Accept-Language`` (q-values honoured), else English. Every label a page shows is a key here:
a test checks that both languages have every key.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGS = ("en", "zh")
DEFAULT = "en"
COOKIE = "clipline_lang"
#: The value of ``<html lang>`` per language.
HTML_LANG = {"en": "en", "zh": "zh-CN"}

# key: (English, 中文)
_TEXT: dict[str, tuple[str, str]] = {
    "app": ("clipline", "clipline"),
    "skip": ("Skip to content", "跳到正文"),
    "nav.jobs": ("Jobs", "任务列表"),
    "nav.submit": ("Submit a job", "提交任务"),
    "nav.logout": ("Log out", "退出登录"),
    "nav.lang": ("Language", "语言"),
    "login.title": ("Log in", "登录"),
    "login.token": ("API token", "API 令牌"),
    "login.hint": ("The token set in CLIPLINE_API_TOKEN.", "即 CLIPLINE_API_TOKEN 中设置的令牌。"),
    "login.submit": ("Log in", "登录"),
    "login.wrong": ("That token is not right.", "令牌不正确。"),
    "login.expired": ("Your session has expired: log in again.", "会话已过期，请重新登录。"),
    "login.needed": ("Log in to see this page.", "请先登录。"),
    "csrf": ("The form had expired: try again.", "表单已失效，请重试。"),
    "jobs.title": ("Jobs", "任务列表"),
    "jobs.filter": ("Filter jobs", "筛选任务"),
    "jobs.status": ("Status", "状态"),
    "jobs.any": ("Any status", "全部状态"),
    "jobs.search": ("Job id or mix request id", "任务 ID 或 mix_request_id"),
    "jobs.apply": ("Apply", "筛选"),
    "jobs.none": ("No jobs match.", "没有符合条件的任务。"),
    "jobs.count": ("{total} job(s)", "共 {total} 个任务"),
    "jobs.page": ("Page {page} of {pages}", "第 {page} / {pages} 页"),
    "jobs.prev": ("Newer", "上一页"),
    "jobs.next": ("Older", "下一页"),
    "jobs.pages": ("Pages", "分页"),
    "col.job": ("Job", "任务"),
    "col.mix": ("Mix request", "mix_request_id"),
    "col.status": ("Status", "状态"),
    "col.progress": ("Progress", "进度"),
    "col.created": ("Created", "创建时间"),
    "col.duration": ("Duration", "耗时"),
    "col.clips": ("Clips by outcome", "片段结果"),
    "job.title": ("Job {job_id}", "任务 {job_id}"),
    "job.attempt": ("Attempt", "尝试"),
    "job.quality": ("Quality", "画质"),
    "quality.final": ("Final", "正式"),
    "quality.draft": ("Draft: a quarter of the pixels, for review", "草稿：四分之一像素，仅供审核"),
    "job.finished": ("Finished", "结束时间"),
    "job.error": ("Error", "错误"),
    "job.live": ("Updates live while the job runs.", "任务运行时页面自动更新。"),
    "job.timeline": ("Timeline", "时间线"),
    "job.timeline.help": (
        "One block per lyric line, to scale. Hover or focus a block for its details.",
        "每一句歌词一个方块，宽度与时长成比例。鼠标悬停或键盘聚焦可查看详情。",
    ),
    "job.legend": ("Legend", "图例"),
    "job.slots": ("All lines", "全部歌词"),
    "job.missing": ("Lines without their footage", "缺少素材的歌词"),
    "job.missing.none": ("Every finished line has its planned footage.", "已完成的歌词都有计划中的素材。"),
    "job.missing.unknown": (
        "This attempt ended without a report: which lines lack footage is not known.",
        "本次尝试结束时没有生成报告，无法得知哪些歌词缺少素材。",
    ),
    "job.missing.advice": ("What to do", "处理建议"),
    # The report's advice is English; a Chinese page adds these above it (the report's words stay).
    "advice.local": (
        "Footage came from the local copy of {video_id}.",
        "画面来自 {video_id} 的本地副本；如画面与预期不同，请检查 CDN 上的素材。",
    ),
    "advice.placeholder": (
        "A black placeholder is shown: restore {video_id} or pick another clip, then retry.",
        "此处显示黑色占位画面：请在 CDN 上恢复 {video_id}，或把 {video_id}.mp4 放入媒体目录，"
        "或为这些歌词另选片段，然后重试。",
    ),
    "advice.failed": (
        "No clip could be produced: fix the error, then retry.",
        "没有生成任何片段（连占位画面也没有）：请修正错误后重试。",
    ),
    "job.video": ("Video", "视频"),
    "job.video.none": ("No video to show yet.", "暂无可播放的视频。"),
    "job.links": ("Files", "文件"),
    "job.report": ("report.json", "report.json"),
    "job.download": ("Download the video", "下载视频"),
    "job.actions": ("Actions", "操作"),
    "job.cancel": ("Cancel job", "取消任务"),
    "job.retry": ("Retry job", "重试任务"),
    "job.cancel.confirm": (
        "Cancel job {job_id}? Running clips are stopped.",
        "确定取消任务 {job_id}？正在处理的片段会被停止。",
    ),
    "job.retry.confirm": (
        "Retry job {job_id}? Lines without their footage are rendered again.",
        "确定重试任务 {job_id}？缺少素材的歌词会重新渲染。",
    ),
    "job.confirm.title": ("Please confirm", "请确认"),
    "job.confirm.yes": ("Yes, go ahead", "确定"),
    "job.confirm.no": ("No, go back", "返回"),
    "job.done.cancelled": ("The job was cancelled.", "任务已取消。"),
    "job.done.retried": ("The job was started again.", "任务已重新开始。"),
    "job.refused.cancel": ("The job could not be cancelled.", "无法取消该任务。"),
    "job.refused.retry": ("The job could not be started again.", "无法重试该任务。"),
    "job.history": ("Earlier attempts", "之前的尝试"),
    "slot.line": ("Line {n}", "第 {n} 句"),
    "slot.time": ("Time", "时间"),
    "slot.source": ("Source", "素材"),
    "slot.outcome": ("Outcome", "结果"),
    "slot.reason": ("Reason", "原因"),
    "slot.text": ("Lyric", "歌词"),
    "outcome.ok": ("ok", "正常"),
    "outcome.local": ("local copy", "本地副本"),
    "outcome.placeholder": ("placeholder", "占位画面"),
    "outcome.failed": ("failed", "失败"),
    "outcome.pending": ("pending", "等待中"),
    "outcome.running": ("running", "处理中"),
    "status.PENDING": ("pending", "等待中"),
    "status.PLANNING": ("planning", "规划中"),
    "status.EXTRACTING": ("cutting clips", "剪辑中"),
    "status.ASSEMBLING": ("assembling", "合成中"),
    "status.COMPLETED": ("completed", "已完成"),
    "status.COMPLETED_WITH_GAPS": ("completed with gaps", "已完成（有缺口）"),
    "status.FAILED": ("failed", "失败"),
    "status.CANCELLED": ("cancelled", "已取消"),
    "submit.title": ("Submit a job", "提交任务"),
    "submit.paste": ("Request JSON", "请求 JSON"),
    "submit.paste.hint": (
        "Paste the render request (DESIGN.md's format), or choose a file below.",
        "粘贴渲染请求（格式见 DESIGN.md），或在下方选择文件。",
    ),
    "submit.file": ("Or upload a .json file", "或上传 .json 文件"),
    "submit.go": ("Submit", "提交"),
    "submit.errors": ("The request was not accepted", "请求未被接受"),
    "submit.at": ("at line {line}, column {col} of your text", "位于您文本的第 {line} 行第 {col} 列"),
    "submit.empty": ("Paste a request or choose a file.", "请粘贴请求或选择文件。"),
    "submit.json": ("This is not valid JSON: {msg}", "这不是有效的 JSON：{msg}"),
    "submit.big": ("The request is over {n} bytes.", "请求超过 {n} 字节。"),
    "submit.conflict": ("Conflict", "冲突"),
    "notfound.title": ("Not found", "未找到"),
    "notfound.job": ("There is no job {job_id}.", "没有任务 {job_id}。"),
    "notfound.page": ("There is no such page.", "没有这个页面。"),
    "back.jobs": ("Back to the jobs", "返回任务列表"),
    "unavailable.title": ("Service unavailable", "服务暂不可用"),
    "unavailable.body": ("{what} cannot be reached; try again shortly.", "暂时无法连接 {what}，请稍后再试。"),
    "service.database": ("the database", "数据库"),
    "service.broker": ("the broker", "消息队列"),
    "service.redis": ("Redis", "Redis"),
    "toobig.title": ("Too large", "内容过大"),
    "toobig.body": (
        "The form sent more than a request of up to {n} bytes allows.",
        "表单发送的内容超出了请求上限（{n} 字节）。",
    ),
    "internal.title": ("Something went wrong", "出错了"),
    "internal.body": ("An internal error; the API's log has the details.", "内部错误，详情见 API 日志。"),
    "progress.label": ("{n} % done", "已完成 {n}%"),
}


def text(lang: str, key: str, **values: object) -> str:
    """The label ``key`` in ``lang``, with ``{name}`` fields filled (values are escaped by the template)."""
    en, zh = _TEXT[key]
    template = zh if lang == "zh" else en
    return template.format(**values) if values else template


def keys() -> list[str]:
    return list(_TEXT)


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language when valid, else the best-weighted match in Accept-Language, else English."""
    if cookie in LANGS:
        return str(cookie)
    best, best_q = DEFAULT, 0.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        # Ties keep the earlier tag: a small bias keeps the header's order.
        score = q - position * 1e-6
        if primary in LANGS and q > 0 and score > best_q:
            best, best_q = primary, score
    return best


def table(lang: str) -> Mapping[str, str]:
    """Every label in one language (for the templates' ``t`` helper)."""
    return {key: pair[1] if lang == "zh" else pair[0] for key, pair in _TEXT.items()}
